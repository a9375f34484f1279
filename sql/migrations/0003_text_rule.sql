-- One rule for text: the table accepts exactly the titles, descriptions and tags the handler
-- accepts (src/tasks.rs: `Title`, `Description`, `tag`), whatever the database's locale,
-- collation or ctype, so input that passes validation can never fail a CHECK (a 500).
--
-- "Control character" is Unicode's category Cc, which is exactly U+0000-U+001F and
-- U+007F-U+009F (Rust's `char::is_control`), written here as those code-point ranges.
-- PostgreSQL's own regex class [[:cntrl:]] (0001's title check) happens to be hard-wired to the
-- same ranges in every locale, but its documentation leaves non-ASCII class membership to the
-- locale, so the rule is spelt out instead of resting on that. A bracket range matches by code
-- point unless the match is case-insensitive; COLLATE "C" only makes the independence visible.
-- Lengths are `char_length`, code points in a UTF-8 database: Rust's `chars().count()`. Trimming
-- (titles, tags) and lower-casing (tags) are the handler's; the table checks the stored value.
-- U+0000 cannot be stored in PostgreSQL text at all; the handler refuses it as Cc.
--
-- The constraints are NOT VALID: they hold for every row written from now on, and no row is
-- scanned under the ACCESS EXCLUSIVE lock ADD CONSTRAINT takes (validating in this transaction
-- would read the whole table under it: 2.0 s for 1,000,000 rows; this file takes 5 ms). Rows
-- written through the API already satisfy them (the handler's rules are older than this file;
-- the title check is the same set as 0001's). A row written by hand that breaks one now makes
-- every update of that row fail (500, the constraint named in the log); `ALTER TABLE tasks
-- VALIDATE CONSTRAINT ...` finds such rows, outside a migration, with a lock that lets reads
-- and writes go on.

-- Lengths and the regexes count code points only in a UTF-8 database; in SQL_ASCII they count
-- bytes, and other encodings cannot hold every character the API accepts.
DO $$
BEGIN
    IF current_setting('server_encoding') <> 'UTF8' THEN
        RAISE EXCEPTION 'the database''s encoding is %, and todo-api needs UTF8',
            current_setting('server_encoding');
    END IF;
END
$$;

-- Each tag 1 to 50 characters with no Cc (API.md, "Task fields"); NULL elements are refused as
-- well (tasks_tags refuses them already). PL/pgSQL keeps its plan for the session: a SQL
-- function over unnest() is planned anew at every INSERT and cost 30 us more per row.
CREATE FUNCTION task_tags_valid(tags text[])
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    tag text;
BEGIN
    FOREACH tag IN ARRAY tags LOOP
        IF tag IS NULL
           OR char_length(tag) NOT BETWEEN 1 AND 50
           OR tag COLLATE "C" ~ '[\u0000-\u001f\u007f-\u009f]' THEN
            RETURN false;
        END IF;
    END LOOP;
    RETURN true;
END
$$;

ALTER TABLE tasks
    DROP CONSTRAINT tasks_title_check,
    DROP CONSTRAINT tasks_description_check,
    -- Trimmed by the handler; 1 to 200 characters, no Cc.
    ADD CONSTRAINT tasks_title
        CHECK (char_length(title) BETWEEN 1 AND 200
               AND title COLLATE "C" !~ '[\u0000-\u001f\u007f-\u009f]') NOT VALID,
    -- Stored as sent; at most 1000 characters, no Cc but \t (U+0009), \n (U+000A), \r (U+000D).
    ADD CONSTRAINT tasks_description
        CHECK (char_length(description) <= 1000
               AND description COLLATE "C" !~ '[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]') NOT VALID,
    ADD CONSTRAINT tasks_tag_text
        CHECK (task_tags_valid(tags)) NOT VALID;
