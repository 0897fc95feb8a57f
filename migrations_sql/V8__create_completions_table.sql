-- V8: completions, the history of chores done: who, when, how many points, a note.
-- Designed for volume: range-partitioned by month on completed_at. The primary key must
-- contain the partition key, so it is (id, completed_at); id alone comes from a sequence
-- and is what Django uses as the model's primary key (docs/schema-decisions.md).
-- choregarden_create_completion_partitions(from, to) adds monthly partitions; this file
-- creates them for three months back to six months ahead, plus a DEFAULT partition.
-- Rollback: U8__create_completions_table.sql.

CREATE SEQUENCE completions_id_seq AS bigint;

CREATE TABLE completions (
    id             bigint      NOT NULL DEFAULT nextval('completions_id_seq'),
    household_id   bigint      NOT NULL,
    member_id      bigint      NULL,
    task_id        bigint      NULL,
    assignment_id  bigint      NULL,
    completed_at   timestamptz NOT NULL DEFAULT now(),
    points         smallint    NOT NULL,
    note           text        NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT completions_pkey PRIMARY KEY (id, completed_at),
    CONSTRAINT completions_household_id_fkey FOREIGN KEY (household_id)
        REFERENCES households (id) ON DELETE CASCADE,
    -- Composite keys: the member and the task belong to the completion's household.
    CONSTRAINT completions_member_household_fkey FOREIGN KEY (member_id, household_id)
        REFERENCES household_members (id, household_id) ON DELETE SET NULL (member_id),
    CONSTRAINT completions_task_household_fkey FOREIGN KEY (task_id, household_id)
        REFERENCES tasks (id, household_id) ON DELETE SET NULL (task_id),
    CONSTRAINT completions_assignment_id_fkey FOREIGN KEY (assignment_id)
        REFERENCES assignments (id) ON DELETE SET NULL,
    CONSTRAINT completions_points_range CHECK (points BETWEEN 0 AND 1000),
    CONSTRAINT completions_note_length CHECK (char_length(note) <= 1000)
) PARTITION BY RANGE (completed_at);

ALTER SEQUENCE completions_id_seq OWNED BY completions.id;

-- The month's leaderboard: index-only scan over one partition.
CREATE INDEX completions_household_month ON completions (household_id, completed_at)
    INCLUDE (member_id, points);
-- A member's history; serves the member foreign key.
CREATE INDEX completions_member_time ON completions (member_id, completed_at);
-- Foreign keys ON DELETE SET NULL look the referencing rows up through these.
CREATE INDEX completions_task_id ON completions (task_id) WHERE task_id IS NOT NULL;
CREATE INDEX completions_assignment_id ON completions (assignment_id)
    WHERE assignment_id IS NOT NULL;

-- SECURITY DEFINER: the application role (no CREATE on the schema) may add partitions
-- ahead of time, and they belong to the owner like every other table.
CREATE FUNCTION choregarden_create_completion_partitions(from_month date, to_month date)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    month date := date_trunc('month', from_month)::date;
    made integer := 0;
    name text;
BEGIN
    WHILE month <= to_month LOOP
        name := format('completions_y%sm%s', to_char(month, 'YYYY'), to_char(month, 'MM'));
        IF to_regclass(name) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF completions FOR VALUES FROM (%L) TO (%L)',
                name, month::timestamp AT TIME ZONE 'UTC',
                (month + interval '1 month')::timestamp AT TIME ZONE 'UTC');
            EXECUTE format('COMMENT ON TABLE %I IS %L', name,
                'Completions of ' || to_char(month, 'YYYY-MM') || ' (UTC), a partition of completions.');
            made := made + 1;
        END IF;
        month := (month + interval '1 month')::date;
    END LOOP;
    RETURN made;
END;
$$;
COMMENT ON FUNCTION choregarden_create_completion_partitions(date, date) IS
    'Create the missing monthly partitions of completions from from_month to to_month (UTC months); returns how many it made. Fails if the DEFAULT partition already holds rows of such a month.';

REVOKE ALL ON FUNCTION choregarden_create_completion_partitions(date, date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION choregarden_create_completion_partitions(date, date) TO ${app_role};

CREATE TABLE completions_default PARTITION OF completions DEFAULT;
COMMENT ON TABLE completions_default IS
    'Completions outside every monthly partition; should stay empty (create partitions ahead).';

SELECT choregarden_create_completion_partitions(
    (date_trunc('month', now() AT TIME ZONE 'UTC') - interval '3 months')::date,
    (date_trunc('month', now() AT TIME ZONE 'UTC') + interval '6 months')::date);

COMMENT ON TABLE completions IS 'History of chores done, partitioned by month of completed_at; primary key (id, completed_at).';
COMMENT ON COLUMN completions.id IS 'Surrogate key from completions_id_seq; with completed_at, the primary key.';
COMMENT ON COLUMN completions.household_id IS 'The household; deleting it deletes its history.';
COMMENT ON COLUMN completions.member_id IS 'Who did it (a member of the household); NULL once the membership is removed (the points stay with the household).';
COMMENT ON COLUMN completions.task_id IS 'The task done (of the same household); NULL once the task is deleted.';
COMMENT ON COLUMN completions.assignment_id IS 'The assignment fulfilled, if any; NULL for ad-hoc work or once it is deleted.';
COMMENT ON COLUMN completions.completed_at IS 'When the chore was done; the partition key.';
COMMENT ON COLUMN completions.points IS 'Points earned, 0 to 1000 (usually the task''s effort points).';
COMMENT ON COLUMN completions.note IS 'Optional note from the member, at most 1000 characters.';
COMMENT ON COLUMN completions.created_at IS 'When the row was recorded (may be later than completed_at).';
