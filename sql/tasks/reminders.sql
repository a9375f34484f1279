-- User $1's reminders due at $2: tasks not completed whose remind_at is at or before it,
-- oldest first (ties by id), with their number; $3 limit, $4 offset. The partial index
-- tasks_user_reminders holds exactly these rows, in this order.
SELECT id, user_id, title, description, completed, priority::text, tags, due_date, remind_at,
       recurrence, created_at, updated_at,
       (SELECT count(*)
        FROM tasks
        WHERE user_id = $1 AND NOT completed AND remind_at <= $2) AS total
FROM tasks
WHERE user_id = $1 AND NOT completed AND remind_at <= $2
ORDER BY remind_at, id
LIMIT $3 OFFSET $4
