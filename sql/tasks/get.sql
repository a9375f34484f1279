-- One task, only if it belongs to user $2 (otherwise no row: 404).
SELECT id, user_id, title, description, completed, priority::text, tags, due_date, remind_at,
       recurrence, created_at, updated_at
FROM tasks
WHERE id = $1 AND user_id = $2
