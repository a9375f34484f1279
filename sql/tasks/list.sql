-- One page of user $1's tasks, with the number of matches under the same filters.
-- $2 completed filter (NULL = all), $3 text to find in title or description (NULL = any),
-- $4 limit, $5 offset. The ORDER BY comes from db::LIST_TASKS: one statement per order, so
-- that each, prepared once, reads its page from an index in order (ties broken by id in the
-- same direction, so pages never repeat or skip a task). The total (computed once) counts
-- index entries rather than reading every row.
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
