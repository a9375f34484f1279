-- Benchmark data, loaded into a freshly migrated, empty database.
--
-- bench_u1 .. bench_u100 have 100 tasks each; task k of bench_u<n> has id (n - 1) * 100 + k,
-- so the pgbench floor can pick one of a user's tasks without a lookup. bench_big has 10,000
-- tasks (ids 10001 .. 20000). Titles vary, every 4th task is completed, every 3rd has a
-- description, and created_at grows with k so the default order is meaningful.

INSERT INTO users (id)
SELECT 'bench_u' || n FROM generate_series(1, 100) AS n
UNION ALL
SELECT 'bench_big';

INSERT INTO tasks (id, user_id, title, description, completed, created_at, updated_at)
OVERRIDING SYSTEM VALUE
SELECT (n - 1) * 100 + k,
       'bench_u' || n,
       (ARRAY['Buy milk', 'Call the plumber', 'Write the quarterly report', 'Book flights',
              'Water the plants', 'Pay rent', 'Review pull request', 'Plan the sprint',
              'Renew passport', 'Clean the garage'])[1 + (n * 7 + k) % 10] || ' #' || k,
       CASE WHEN k % 3 = 0 THEN 'Notes for task ' || k || E':\n- first step\n- second step' END,
       k % 4 = 0,
       ts, ts
FROM generate_series(1, 100) AS n,
     generate_series(1, 100) AS k,
     LATERAL (SELECT timestamptz '2026-01-01 00:00:00+00'
                     + make_interval(mins => k * 17, secs => n)) AS t (ts);

INSERT INTO tasks (id, user_id, title, description, completed, created_at, updated_at)
OVERRIDING SYSTEM VALUE
SELECT 10000 + k,
       'bench_big',
       (ARRAY['Inbox zero', 'Refactor the parser', 'Call the bank', 'Read chapter',
              'Order groceries', 'Fix the bike', 'Answer emails'])[1 + k % 7] || ' ' || k,
       CASE WHEN k % 3 = 0 THEN repeat('Long description. ', 1 + k % 20) END,
       k % 4 = 0,
       ts, ts
FROM generate_series(1, 10000) AS k,
     LATERAL (SELECT timestamptz '2025-01-01 00:00:00+00'
                     + make_interval(mins => k * 3)) AS t (ts);

-- The task fields (migration 0002): every 2nd task tagged work (the tagged scenario's filter),
-- others home, errands or urgent; priorities in turn; four tasks in five have a due date, spread
-- over a year; every 10th has a reminder.
UPDATE tasks
SET tags = ARRAY(SELECT tag FROM unnest(ARRAY[
               CASE WHEN id % 2 = 0 THEN 'work' END,
               CASE WHEN id % 10 IN (1, 4, 7) THEN 'home' END,
               CASE WHEN id % 10 = 3 THEN 'errands' END,
               CASE WHEN id % 100 = 5 THEN 'urgent' END]) AS tag
                 WHERE tag IS NOT NULL ORDER BY tag),
    priority = (ARRAY['low', 'medium', 'high'])[1 + id % 3]::task_priority,
    due_date = CASE WHEN id % 5 <> 0
                    THEN timestamptz '2026-06-01 09:00:00+00' + make_interval(hours => (id * 37 % 8760)::int) END,
    remind_at = CASE WHEN id % 10 = 0 THEN timestamptz '2026-01-01 08:00:00+00' + make_interval(hours => id::int) END;

-- The update left a dead copy of every row: rewrite the table so the scenarios read it packed,
-- as a table filled by inserts would be.
VACUUM FULL tasks;

-- New tasks (the create scenario) get ids after the seeded ones.
ALTER TABLE tasks ALTER COLUMN id RESTART WITH 20001;

ANALYZE users;
ANALYZE tasks;
