-- Create a task for user $1, creating the user's row on first write in the same statement.
-- $2 title, $3 description (NULL allowed), $4 completed, $5 priority, $6 tags, $7 due_date,
-- $8 remind_at, $9 recurrence; a recurring series counts from its first due date.
WITH new_user AS (
    INSERT INTO users (id) VALUES ($1) ON CONFLICT (id) DO NOTHING
)
INSERT INTO tasks (user_id, title, description, completed, priority, tags, due_date, remind_at,
                   recurrence, recurrence_anchor)
VALUES ($1, $2, $3, $4, $5::task_priority, $6, $7, $8, $9, $7)
RETURNING id, user_id, title, description, completed, priority::text, tags, due_date, remind_at,
          recurrence, created_at, updated_at
