-- The tasks of user $1 that pass the list filters: the body of the `matching` CTE that
-- db::LIST_TASKS wraps around list.sql. When tags are asked for, it appends
-- `AND tags @> $9` (already implied below), which the index tasks_user_tags can answer.
-- $2 completed (NULL: any); $3 text to find in title or description (NULL: any);
-- $4 whether any of the task-field filters $5 to $9 is given. Behind it they are one clause
--    to the planner, which then estimates a plain list as before them and reads its page
--    in order from the sort's index;
-- $5 priority, $6 due on or after, $7 due before, $8 overdue only, $9 tags (all of them).
SELECT *
FROM tasks
WHERE user_id = $1
  AND ($2::bool IS NULL OR completed = $2)
  AND ($3::text IS NULL
       OR strpos(lower(title), lower($3)) > 0
       OR strpos(lower(description), lower($3)) > 0)
  AND (NOT $4::bool
       OR (($5::text IS NULL OR priority = $5::task_priority)
           AND ($6::timestamptz IS NULL OR due_date >= $6)
           AND ($7::timestamptz IS NULL OR due_date < $7)
           AND (NOT $8::bool OR (due_date < now() AND NOT completed))
           AND ($9::text[] IS NULL OR tags @> $9)))
