-- Users known to the API (ids come from Better Auth) and their tasks.
-- The CHECK constraints mirror the request validation as a second line of defence.

CREATE TABLE users (
    id text PRIMARY KEY CHECK (octet_length(id) BETWEEN 1 AND 255),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tasks (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title text NOT NULL
        CHECK (char_length(title) BETWEEN 1 AND 200 AND title !~ '[[:cntrl:]]'),
    description text
        CHECK (char_length(description) <= 1000),
    completed boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Lists are always per user; these serve the default order and the other sort keys.
CREATE INDEX tasks_user_created ON tasks (user_id, created_at DESC, id DESC);
CREATE INDEX tasks_user_updated ON tasks (user_id, updated_at DESC, id DESC);
CREATE INDEX tasks_user_title ON tasks (user_id, title, id);
