-- The number of user $1's tasks under the list filters (for a page past the end).
SELECT count(*)
FROM tasks
WHERE user_id = $1
  AND ($2::bool IS NULL OR completed = $2)
  AND ($3::text IS NULL
       OR strpos(lower(title), lower($3)) > 0
       OR strpos(lower(description), lower($3)) > 0)
