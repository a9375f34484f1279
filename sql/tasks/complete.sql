-- Set completed to $3, or toggle it when $3 is NULL; owner-scoped, no row means 404.
UPDATE tasks
SET completed = COALESCE($3, NOT completed),
    updated_at = now()
WHERE id = $1 AND user_id = $2
RETURNING id, user_id, title, description, completed, created_at, updated_at
