-- One page of the `matching` tasks (matching.sql), with the number of them. db::LIST_TASKS
-- puts the CTE in front and the sort's ORDER BY and `LIMIT $10 OFFSET $11` behind: one
-- statement per sort and direction, so that each, planned once, reads its page from an index
-- in order (ties broken by id in the same direction: pages never repeat or skip a task).
SELECT id, user_id, title, description, completed, priority::text, tags, due_date, remind_at,
       recurrence, created_at, updated_at,
       (SELECT count(*) FROM matching) AS total
FROM matching
