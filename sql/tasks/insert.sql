-- Create a task for user $1, creating the user's row on first write in the same statement.
-- $1 user_id, $2 title, $3 description (NULL allowed), $4 completed
WITH new_user AS (
    INSERT INTO users (id) VALUES ($1) ON CONFLICT (id) DO NOTHING
)
INSERT INTO tasks (user_id, title, description, completed)
VALUES ($1, $2, $3, $4)
RETURNING id, user_id, title, description, completed, created_at, updated_at
