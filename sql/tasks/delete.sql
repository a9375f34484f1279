-- Delete a task of user $2; no row means 404.
DELETE FROM tasks
WHERE id = $1 AND user_id = $2
RETURNING id
