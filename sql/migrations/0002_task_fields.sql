-- Priority, tags, due date, reminder and recurrence (API.md, "Task fields").
--
-- Additive only, so the previous version keeps serving while this runs: its statements name
-- their columns, and the new ones take their defaults. No row is rewritten (every new column
-- has a constant default or none); the constraints are added NOT VALID, so they hold for every
-- row written from now on without a scan of the table under its lock (the defaults satisfy
-- them). The indexes are built under a SHARE lock: reads go on, writes wait for the build.

-- Declared in ascending order, so ORDER BY priority DESC is high, medium, low.
CREATE TYPE task_priority AS ENUM ('low', 'medium', 'high');

ALTER TABLE tasks
    ADD COLUMN priority task_priority NOT NULL DEFAULT 'medium',
    -- Trimmed, lower-cased, unique and sorted by the server (tasks.rs, `tags`).
    ADD COLUMN tags text[] NOT NULL DEFAULT '{}',
    ADD COLUMN due_date timestamptz,
    ADD COLUMN remind_at timestamptz,
    ADD COLUMN recurrence text,
    -- The due date a recurring series counts from, set whenever a client sets `due_date`: the
    -- occurrences fall whole periods after it, so a monthly task due on the 31st comes back
    -- on the 31st after a shorter month. Not part of the Task JSON.
    ADD COLUMN recurrence_anchor timestamptz;

ALTER TABLE tasks
    ADD CONSTRAINT tasks_tags
        CHECK (cardinality(tags) <= 20 AND array_position(tags, NULL) IS NULL) NOT VALID,
    ADD CONSTRAINT tasks_recurrence
        CHECK (recurrence IN ('daily', 'weekly', 'monthly', 'yearly')) NOT VALID,
    -- The API answers 422 when a write would break this one (tasks.rs, `RECURRENCE_NEEDS_DUE`).
    ADD CONSTRAINT tasks_recurrence_needs_due
        CHECK (recurrence IS NULL OR due_date IS NOT NULL) NOT VALID;

-- The list sorts added here, read in order from an index like the others. A due-date list in
-- descending order has no index of its own (README, "Tasks": measured).
CREATE INDEX tasks_user_priority ON tasks (user_id, priority, id);
CREATE INDEX tasks_user_due ON tasks (user_id, due_date, id);

-- The tag filter: one GIN index over the user and the tags together (btree_gin lets a GIN
-- index hold the text column), so a rare tag of a user with many tasks reads only its own
-- tasks. btree_gin ships with PostgreSQL and is a trusted extension (no superuser needed).
CREATE EXTENSION IF NOT EXISTS btree_gin;
CREATE INDEX tasks_user_tags ON tasks USING gin (user_id, tags);

-- What a notification worker polls: a user's pending reminders, oldest first.
CREATE INDEX tasks_user_reminders ON tasks (user_id, remind_at, id)
    WHERE NOT completed AND remind_at IS NOT NULL;

-- The due date of a recurring task's next occurrence: the first date `anchor` plus a whole
-- number (at least one) of periods that is later than both `due` (the current occurrence) and
-- `done_at` (its completion). Counted in UTC, whatever the session's time zone: days and weeks
-- as 86,400 and 604,800 seconds; months and years on the calendar from the anchor's day,
-- clamped to the month's last day (Jan 31 -> Feb 28 or 29 -> Mar 31; Feb 29 -> Feb 28 in
-- common years -> Feb 29). NULL past the year 9999, which the API cannot write: the series ends.
CREATE FUNCTION task_next_due(anchor timestamptz, due timestamptz, recurrence text, done_at timestamptz)
RETURNS timestamptz
LANGUAGE plpgsql IMMUTABLE STRICT
AS $$
DECLARE
    start timestamp := anchor AT TIME ZONE 'UTC';
    target timestamp := greatest(due, done_at) AT TIME ZONE 'UTC';
    seconds numeric;
    step int;
    months int;
    due_next timestamp;
BEGIN
    IF recurrence IN ('daily', 'weekly') THEN
        seconds := CASE recurrence WHEN 'daily' THEN 86400 ELSE 604800 END;
        due_next := start + make_interval(secs => seconds * (floor(extract(epoch FROM target - start) / seconds) + 1));
    ELSIF recurrence IN ('monthly', 'yearly') THEN
        step := CASE recurrence WHEN 'monthly' THEN 1 ELSE 12 END;
        -- The anchor's day in the target's month (or year): the answer if it is later, else
        -- the one a period after.
        months := (extract(year FROM target) - extract(year FROM start))::int * 12;
        IF step = 1 THEN
            months := months + (extract(month FROM target) - extract(month FROM start))::int;
        END IF;
        IF start + make_interval(months => months) <= target THEN
            months := months + step;
        END IF;
        due_next := start + make_interval(months => greatest(months, step));
    ELSE
        RETURN NULL;
    END IF;
    IF due_next >= timestamp '10000-01-01' THEN
        RETURN NULL;
    END IF;
    RETURN due_next AT TIME ZONE 'UTC';
END
$$;
