-- Owner-scoped update of the fields present in the request; no row means 404. Every change
-- goes through here, `PATCH .../complete` included, so a recurring task that becomes
-- completed, by any route, gets its next occurrence in the same statement.
-- $3 title (NULL: unchanged); $4 whether description is present, $5 description;
-- $6 completed (NULL: unchanged), $7 whether to toggle completed instead; $8 priority and
-- $9 tags (NULL: unchanged); $10, $12, $14 whether due_date, remind_at, recurrence are
-- present, $11, $13, $15 their values. Setting due_date restarts the series' count from it.
WITH old AS (
    -- Locks the row first and reads it as it is now, even after a concurrent update: of two
    -- requests completing the same task at once, the second sees it completed.
    SELECT completed AS was_completed
    FROM tasks
    WHERE id = $1 AND user_id = $2
    FOR UPDATE
), changed AS (
    UPDATE tasks
    SET title = COALESCE($3, title),
        description = CASE WHEN $4 THEN $5 ELSE description END,
        completed = CASE WHEN $7 THEN NOT completed ELSE COALESCE($6, completed) END,
        priority = COALESCE($8::task_priority, priority),
        tags = COALESCE($9, tags),
        due_date = CASE WHEN $10 THEN $11 ELSE due_date END,
        recurrence_anchor = CASE WHEN $10 THEN $11 ELSE recurrence_anchor END,
        remind_at = CASE WHEN $12 THEN $13 ELSE remind_at END,
        recurrence = CASE WHEN $14 THEN $15 ELSE recurrence END,
        updated_at = now()
    FROM old
    WHERE id = $1 AND user_id = $2
    RETURNING *
), next AS (
    -- The next occurrence (API.md, "Recurrence"), its reminder as far before its due date as
    -- this one's; none when the series would run past the year 9999.
    INSERT INTO tasks (user_id, title, description, priority, tags, due_date, remind_at,
                       recurrence, recurrence_anchor)
    SELECT user_id, title, description, priority, tags, due,
           remind_at + make_interval(secs => extract(epoch FROM due - due_date)),
           recurrence, recurrence_anchor
    FROM changed,
         task_next_due(COALESCE(recurrence_anchor, due_date), due_date, recurrence, now()) AS due
    WHERE completed AND NOT was_completed
      AND due IS NOT NULL
      -- Completed, un-completed and completed again: its next occurrence is there already
      -- (same series, title and due date), unless the user deleted or changed it.
      AND NOT EXISTS (SELECT 1 FROM tasks AS t
                      WHERE user_id = $2 AND t.due_date = due
                        AND t.title = changed.title AND t.recurrence = changed.recurrence
                        AND t.recurrence_anchor IS NOT DISTINCT FROM changed.recurrence_anchor)
      AND (remind_at IS NULL
           OR remind_at + make_interval(secs => extract(epoch FROM due - due_date)) < '10000-01-01Z')
    RETURNING id
)
SELECT id, user_id, title, description, completed, priority::text, tags, due_date, remind_at,
       recurrence, created_at, updated_at,
       (SELECT id FROM next) AS next_id
FROM changed
