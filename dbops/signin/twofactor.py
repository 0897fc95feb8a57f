"""A second factor for staff: TOTP devices (django-otp) on the admin's sign-in form.

With ADMIN_REQUIRE_2FA (on in production) the admin asks for a token from the user's
confirmed TOTP device and lets in only sessions verified by one. `manage.py addtotp USER`
enrolls a device. A wrong token counts as a failed sign-in for django-axes, so guessing
tokens is throttled as guessing passwords is.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import user_login_failed
from django_otp import devices_for_user
from django_otp.admin import OTPAdminAuthenticationForm
from django_otp.plugins.otp_totp.models import TOTPDevice

NO_DEVICE = (
    "This account has no confirmed authenticator (TOTP) device, which the admin requires: "
    "ask an administrator to run `manage.py addtotp {username}`."
)


class TOTPAdminAuthenticationForm(OTPAdminAuthenticationForm):
    """The admin's sign-in form: user name, password and the token of a TOTP device."""

    def clean_otp(self, user: Any) -> None:
        if user is not None and not any(devices_for_user(user)):
            raise forms.ValidationError(
                NO_DEVICE.format(username=user.get_username()), code="no_device"
            )
        super().clean_otp(user)

    def _chosen_device(self, user: Any) -> Any:
        # django-otp asks the user to pick a device; with only one there is nothing to pick.
        device = super()._chosen_device(user)
        if device is None:
            devices = list(devices_for_user(user))
            if len(devices) == 1:
                device = devices[0]
        return device

    def _verify_token(self, user: Any, token: str, device: Any = None) -> Any:
        try:
            return super()._verify_token(user, token, device)
        except forms.ValidationError:
            user_login_failed.send(
                sender=__name__,
                credentials={"username": user.get_username()},
                request=self.request,
            )
            raise


def add_device(user: Any, name: str, replace: bool = False) -> TOTPDevice:
    """Create a confirmed TOTP device for `user` (first deleting theirs when `replace`)."""
    if replace:
        TOTPDevice.objects.filter(user=user).delete()
    return TOTPDevice.objects.create(user=user, name=name, confirmed=True)
