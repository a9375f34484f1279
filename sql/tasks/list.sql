-- One page of user $1's tasks, with the number of matches under the same filters.
-- $2 completed filter (NULL = all), $3 text to find in title or description (NULL = any),
-- $4 sort key ('created' | 'updated' | 'title'), $5 descending, $6 limit, $7 offset.
-- Ties are broken by id in the same direction, so pages never repeat or skip a task.
-- Run as an unnamed statement, it is planned with its parameters' values: the CASEs fold
-- away and the page comes from an index in order; the total (computed once) counts index
-- entries rather than reading every row.
SELECT id, user_id, title, description, completed, created_at, updated_at,
       (SELECT count(*)
        FROM tasks
        WHERE user_id = $1
          AND ($2::bool IS NULL OR completed = $2)
          AND ($3::text IS NULL
               OR strpos(lower(title), lower($3)) > 0
               OR strpos(lower(description), lower($3)) > 0)) AS total
FROM tasks
WHERE user_id = $1
  AND ($2::bool IS NULL OR completed = $2)
  AND ($3::text IS NULL
       OR strpos(lower(title), lower($3)) > 0
       OR strpos(lower(description), lower($3)) > 0)
ORDER BY
    CASE WHEN $4 = 'created' AND NOT $5 THEN created_at END ASC,
    CASE WHEN $4 = 'created' AND $5 THEN created_at END DESC,
    CASE WHEN $4 = 'updated' AND NOT $5 THEN updated_at END ASC,
    CASE WHEN $4 = 'updated' AND $5 THEN updated_at END DESC,
    CASE WHEN $4 = 'title' AND NOT $5 THEN title END ASC,
    CASE WHEN $4 = 'title' AND $5 THEN title END DESC,
    CASE WHEN NOT $5 THEN id END ASC,
    CASE WHEN $5 THEN id END DESC
LIMIT $6 OFFSET $7
