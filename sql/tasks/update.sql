-- Owner-scoped update of the fields present in the request; no row means 404.
-- $3 title (NULL = unchanged), $4 whether description is present, $5 description,
-- $6 completed (NULL = unchanged). Only run when at least one field is present.
UPDATE tasks
SET title = COALESCE($3, title),
    description = CASE WHEN $4 THEN $5 ELSE description END,
    completed = COALESCE($6, completed),
    updated_at = now()
WHERE id = $1 AND user_id = $2
RETURNING id, user_id, title, description, completed, created_at, updated_at
