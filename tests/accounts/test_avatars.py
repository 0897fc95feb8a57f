"""Avatar uploads (issue 13.6): only real images, within limits, stored privately."""

from __future__ import annotations

import contextlib
import io
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws
from PIL import Image

from accounts.avatars import EXTENSIONS, validate_avatar
from accounts.models import UserProfile
from tests.accounts.test_profile_admin import form_data
from tests.helpers import REPO

SVG = (
    b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg">'
    b"<script>fetch('/admin/logout/')</script></svg>"
)


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (8, 8)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, format=fmt)
    return out.getvalue()


def upload(name: str, data: bytes, content_type: str = "image/png") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type=content_type)


@pytest.fixture
def profile(db: Any) -> UserProfile:
    return UserProfile.objects.create(cognito_sub="sub-avatar", email="ava@example.com")


@pytest.fixture
def media(tmp_path: Path) -> Any:
    with override_settings(MEDIA_ROOT=tmp_path / "media"):
        yield tmp_path / "media"


def post_avatar(client: Any, profile: UserProfile, file: SimpleUploadedFile) -> Any:
    url = reverse("admin:accounts_userprofile_change", args=[profile.pk])
    return client.post(url, {**form_data(profile), "avatar": file})


def stored_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


@pytest.mark.django_db
def test_an_svg_with_script_named_png_is_refused_with_a_form_error(
    admin_client: Any, profile: UserProfile, media: Path
) -> None:
    response = post_avatar(admin_client, profile, upload("avatar.png", SVG))
    assert response.status_code == 200  # the form again, not a redirect
    errors = response.context["adminform"].form.errors
    assert "is not a PNG, JPEG, WebP or GIF image" in errors["avatar"][0]
    profile.refresh_from_db()
    assert not profile.avatar
    assert stored_files(media) == []


@pytest.mark.django_db
def test_an_svg_extension_is_refused(admin_client: Any, profile: UserProfile, media: Path) -> None:
    response = post_avatar(admin_client, profile, upload("a.svg", SVG, "image/svg+xml"))
    assert "is not an allowed image type" in response.context["adminform"].form.errors["avatar"][0]
    assert stored_files(media) == []


@pytest.mark.django_db
def test_a_file_over_the_size_limit_is_refused(
    admin_client: Any, profile: UserProfile, media: Path
) -> None:
    big = image_bytes("PNG", (64, 64))
    with override_settings(AVATAR_MAX_BYTES=len(big) - 1):
        response = post_avatar(admin_client, profile, upload("big.png", big))
    error = response.context["adminform"].form.errors["avatar"][0]
    assert f"is {len(big):,} bytes" in error and "AVATAR_MAX_BYTES" in error
    assert stored_files(media) == []


@pytest.mark.django_db
def test_an_image_over_the_pixel_limit_is_refused(
    admin_client: Any, profile: UserProfile, media: Path
) -> None:
    # A small file that decodes to many pixels: what a decompression bomb is.
    bomb = image_bytes("PNG", (3000, 3000))
    assert len(bomb) < 100_000
    with override_settings(AVATAR_MAX_PIXELS=2000 * 2000):
        response = post_avatar(admin_client, profile, upload("bomb.png", bomb))
    error = response.context["adminform"].form.errors["avatar"][0]
    assert "3000x3000 pixels" in error and "AVATAR_MAX_PIXELS" in error


@pytest.mark.django_db
def test_a_jpeg_named_png_is_refused(admin_client: Any, profile: UserProfile, media: Path) -> None:
    response = post_avatar(admin_client, profile, upload("photo.png", image_bytes("JPEG")))
    error = response.context["adminform"].form.errors["avatar"][0]
    assert "is a JPEG image with a .png name" in error


@pytest.mark.django_db
def test_a_real_png_is_stored_under_a_random_name_readable_by_the_owner_only(
    admin_client: Any, profile: UserProfile, media: Path
) -> None:
    response = post_avatar(admin_client, profile, upload("../../me.png", image_bytes()))
    assert response.status_code == 302, response.context["adminform"].form.errors
    profile.refresh_from_db()
    assert profile.avatar.name.startswith("avatars/") and profile.avatar.name.endswith(".png")
    assert "me" not in profile.avatar.name
    [stored] = stored_files(media)
    assert stat.S_IMODE(stored.stat().st_mode) == 0o640
    assert stat.S_IMODE(stored.parent.stat().st_mode) == 0o750


@pytest.mark.django_db
def test_uploads_are_not_served_from_the_admins_origin(
    admin_client: Any, profile: UserProfile, media: Path
) -> None:
    post_avatar(admin_client, profile, upload("me.png", image_bytes()))
    profile.refresh_from_db()
    assert admin_client.get(profile.avatar.url).status_code == 404


def avatar_storage_settings(manage_env: dict[str, str], **env: str) -> Any:
    code = (
        "import json; from django.conf import settings; "
        "print(json.dumps(settings.STORAGES['default'], default=str))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**manage_env, "DJANGO_SETTINGS_MODULE": "choregarden.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc


@pytest.mark.django_db
def test_on_s3_the_avatar_gets_its_real_content_type_and_attachment(
    admin_client: Any, profile: UserProfile, manage_env: dict[str, str], monkeypatch: Any
) -> None:
    proc = avatar_storage_settings(
        manage_env, AVATAR_BUCKET="cg-avatars", AVATAR_REGION="us-east-1"
    )
    assert proc.returncode == 0, proc.stderr
    default = json.loads(proc.stdout)
    assert default["BACKEND"] == "storages.backends.s3.S3Storage"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws(), override_settings(STORAGES={"default": default}):
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="cg-avatars")
        # The browser's word is "application/octet-stream": the stored type is the real one.
        file = upload("me.webp", image_bytes("WEBP"), "application/octet-stream")
        response = post_avatar(admin_client, profile, file)
        assert response.status_code == 302
        profile.refresh_from_db()
        head = s3.head_object(Bucket="cg-avatars", Key=profile.avatar.name)
        assert "cg-avatars" in profile.avatar.url and "Signature" in profile.avatar.url
    assert head["ContentType"] == "image/webp"
    assert head["ContentDisposition"] == "attachment"


def test_an_avatar_domain_on_the_admins_host_is_refused(manage_env: dict[str, str]) -> None:
    proc = avatar_storage_settings(
        manage_env, AVATAR_BUCKET="cg-avatars", AVATAR_DOMAIN="localhost"
    )
    assert proc.returncode != 0
    assert "AVATAR_DOMAIN='localhost' is one of ALLOWED_HOSTS" in proc.stderr


@settings(max_examples=int(os.environ.get("AVATAR_EXAMPLES", "150")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
@given(
    head=st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"RIFF"]),
    body=st.binary(max_size=2048),
    keep=st.integers(min_value=0, max_value=400),
    ext=st.sampled_from([*EXTENSIONS, "svg", "PNG", ""]),
)
def test_the_validator_only_ever_raises_validation_error(
    head: bytes, body: bytes, keep: int, ext: str
) -> None:
    # Random bytes behind real magic numbers, and real images cut short or with junk
    # spliced in, reach deep into Pillow's decoders.
    real = image_bytes({"png": "PNG", "gif": "GIF", "webp": "WEBP"}.get(ext.lower(), "JPEG"))
    for data in (head + body, real[:keep] + body, real[:keep] + body + real[keep:]):
        with contextlib.suppress(ValidationError):
            validate_avatar(upload(f"x.{ext}" if ext else "x", data))
