"""Verdicts (live and replayed), their category tags, users, sessions, the append-only review
trail and the corrections outbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Live verdicts have run_id '' (moderation.archive); replayed ones their run id
# (moderation.replay). At-least-once duplicates collapse on (event_id, run_id):
# the first stored copy stays.
#
# The console pages newest-first with a keyset on (moderated_at, id); every
# filter it offers has an index in that order, partial on the rows it lists.
UPGRADE = """
CREATE TABLE verdicts (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id           text        NOT NULL,
    run_id             text        NOT NULL DEFAULT '',
    source             text        NOT NULL CHECK (source IN ('archive', 'replay')),
    conversation_id    text        NOT NULL,
    user_id            text        NOT NULL,
    event_time         timestamptz NOT NULL,
    moderated_at       timestamptz NOT NULL,
    outcome            text        NOT NULL,
    status             text,
    answer_request     text,
    answer_completion  text,
    answer_response    text,
    has_response       boolean     NOT NULL,
    model              text        NOT NULL DEFAULT '',
    engine             text        NOT NULL DEFAULT '',
    tags               text[]      NOT NULL DEFAULT '{}',
    harms              text[]      NOT NULL DEFAULT '{}',
    request_text       text,
    response_text      text,
    cached             boolean,
    finish_reason      text,
    error              text,
    attempts           integer,
    prompt_tokens      integer,
    completion_tokens  integer,
    queue_ms           double precision,
    engine_ms          double precision,
    total_ms           double precision,
    trace_id           text,
    original_model     text,
    original_outcome   text,
    original_answers   jsonb,
    flipped            boolean     NOT NULL DEFAULT false,
    reviewed_at        timestamptz,
    record             jsonb       NOT NULL,
    kafka_topic        text,
    kafka_partition    integer,
    kafka_offset       bigint,
    stored_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT verdicts_event_run UNIQUE (event_id, run_id)
);

CREATE INDEX verdicts_live_recent ON verdicts (moderated_at DESC, id DESC) WHERE run_id = '';
CREATE INDEX verdicts_live_outcome ON verdicts (outcome, moderated_at DESC, id DESC) WHERE run_id = '';
CREATE INDEX verdicts_live_model ON verdicts (model, moderated_at DESC, id DESC) WHERE run_id = '';
CREATE INDEX verdicts_live_unreviewed ON verdicts (moderated_at DESC, id DESC)
    WHERE run_id = '' AND reviewed_at IS NULL;
CREATE INDEX verdicts_live_unreviewed_outcome ON verdicts (outcome, moderated_at DESC, id DESC)
    WHERE run_id = '' AND reviewed_at IS NULL;
CREATE INDEX verdicts_replay_run ON verdicts (run_id, moderated_at DESC, id DESC) WHERE run_id <> '';
CREATE INDEX verdicts_replay_flips ON verdicts (moderated_at DESC, id DESC) WHERE flipped;

-- One row per (verdict, category tag): the category filter pages on its own index.
CREATE TABLE verdict_tags (
    verdict_id    bigint      NOT NULL REFERENCES verdicts (id) ON DELETE CASCADE,
    tag           text        NOT NULL,
    live          boolean     NOT NULL,
    moderated_at  timestamptz NOT NULL,
    PRIMARY KEY (verdict_id, tag)
);
CREATE INDEX verdict_tags_live ON verdict_tags (tag, moderated_at DESC, verdict_id DESC) WHERE live;

-- Records the sink could not read (not JSON, no event id...): kept, never dropped.
CREATE TABLE store_rejects (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kafka_topic      text    NOT NULL,
    kafka_partition  integer NOT NULL,
    kafka_offset     bigint  NOT NULL,
    reason           text    NOT NULL,
    value            bytea,
    stored_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT store_rejects_position UNIQUE (kafka_topic, kafka_partition, kafka_offset)
);

CREATE TABLE users (
    username       text PRIMARY KEY CHECK (username ~ '^[A-Za-z0-9_.@-]{1,64}$'),
    role           text NOT NULL CHECK (role IN ('viewer', 'reviewer', 'admin')),
    password_hash  text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    disabled       boolean NOT NULL DEFAULT false
);

-- The cookie holds a random token; only its SHA-256 is stored.
CREATE TABLE sessions (
    token_hash  text PRIMARY KEY,
    username    text NOT NULL REFERENCES users (username) ON DELETE CASCADE,
    csrf_token  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expires_at);

-- The audit trail: one row per review action, never changed or removed.
CREATE TABLE reviews (
    review_id         uuid PRIMARY KEY,
    verdict_id        bigint      NOT NULL REFERENCES verdicts (id),
    event_id          text        NOT NULL,
    run_id            text        NOT NULL,
    reviewer          text        NOT NULL REFERENCES users (username),
    reviewer_role     text        NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    action            text        NOT NULL CHECK (action IN ('confirm', 'correct')),
    model             text        NOT NULL,
    model_answers     jsonb       NOT NULL,
    answers           jsonb       NOT NULL,
    model_categories  text[]      NOT NULL,
    categories        text[]      NOT NULL,
    agrees            boolean     NOT NULL,
    note              text        NOT NULL DEFAULT ''
);
CREATE INDEX reviews_event ON reviews (event_id, created_at);
CREATE INDEX reviews_created ON reviews (created_at);

CREATE FUNCTION reviews_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the review trail is append-only: % on reviews is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER reviews_no_update_or_delete BEFORE UPDATE OR DELETE ON reviews
    FOR EACH ROW EXECUTE FUNCTION reviews_append_only();
CREATE TRIGGER reviews_no_truncate BEFORE TRUNCATE ON reviews
    FOR EACH STATEMENT EXECUTE FUNCTION reviews_append_only();

-- Reviews not yet acknowledged by Kafka on moderation.corrections (transactional outbox).
CREATE TABLE corrections_outbox (
    review_id    uuid PRIMARY KEY REFERENCES reviews (review_id),
    enqueued_at  timestamptz NOT NULL DEFAULT now()
);
"""

DOWNGRADE = """
DROP TABLE corrections_outbox;
DROP TABLE reviews;
DROP FUNCTION reviews_append_only();
DROP TABLE sessions;
DROP TABLE users;
DROP TABLE store_rejects;
DROP TABLE verdict_tags;
DROP TABLE verdicts;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
