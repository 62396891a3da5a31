-- Retention: daily quests and daily login rewards (crate `retention`).
--
-- Exactly-once guarantees rest on the UNIQUE keys below; the application's
-- locking (see the crate docs) decides who wins, the keys make a second
-- winner impossible even if that locking were wrong.
--
-- Lookup paths and the index serving each:
--   templates by code (seeding)                 uq_dqt_code
--   active templates (quest choice)             ix_dqt_active
--   a player's quests of a day (list, generate) uq_pdq_player_day_template (prefix)
--   progress events (player, day, event kind)   ix_pdq_player_day_kind
--   a quest by id (completion)                  PRIMARY
--   quests of a template (FK)                   ix_pdq_template
--   tier of a cycle day                         PRIMARY of daily_reward_tiers
--   a player's claim of a day, latest claim     uq_drc_player_day
--   the grant of a source (exactly-once)        uq_rl_source
--   a player's grants (balance, history)        ix_rl_player

-- Quest templates. Defined in code (retention::seeds) and upserted by `code`
-- at every server start; a template removed from code is deactivated, never
-- deleted (player quests reference it).
CREATE TABLE daily_quest_templates (
    id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    code         VARCHAR(64)     NOT NULL,
    title        VARCHAR(128)    NOT NULL,
    event_kind   VARCHAR(32)     NOT NULL,
    target       INT UNSIGNED    NOT NULL,
    reward_coins INT UNSIGNED    NOT NULL,
    reward_xp    INT UNSIGNED    NOT NULL,
    active       BOOLEAN         NOT NULL DEFAULT TRUE,
    PRIMARY KEY (id),
    UNIQUE KEY uq_dqt_code (code),
    KEY ix_dqt_active (active, code),
    CONSTRAINT ck_dqt_target CHECK (target > 0)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- A player's quests of one game day. Event kind, target and reward are copied
-- from the template when the day's quests are generated, so a template
-- changed later never changes a quest already handed out.
CREATE TABLE player_daily_quests (
    id           BIGINT UNSIGNED  NOT NULL AUTO_INCREMENT,
    player_id    BIGINT UNSIGNED  NOT NULL,
    day          DATE             NOT NULL,
    template_id  BIGINT UNSIGNED  NOT NULL,
    slot         TINYINT UNSIGNED NOT NULL,
    event_kind   VARCHAR(32)      NOT NULL,
    target       INT UNSIGNED     NOT NULL,
    progress     INT UNSIGNED     NOT NULL DEFAULT 0,
    reward_coins INT UNSIGNED     NOT NULL,
    reward_xp    INT UNSIGNED     NOT NULL,
    created_at   DATETIME(6)      NOT NULL,
    completed_at DATETIME(6)      NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_pdq_player_day_template (player_id, day, template_id),
    KEY ix_pdq_player_day_kind (player_id, day, event_kind),
    KEY ix_pdq_template (template_id),
    CONSTRAINT fk_pdq_player FOREIGN KEY (player_id) REFERENCES players (id) ON DELETE CASCADE,
    CONSTRAINT fk_pdq_template FOREIGN KEY (template_id) REFERENCES daily_quest_templates (id),
    CONSTRAINT ck_pdq_target CHECK (target > 0),
    CONSTRAINT ck_pdq_progress CHECK (progress <= target)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- The 7-day login reward cycle: day_number 1..7. Defined in code and upserted
-- at every server start.
CREATE TABLE daily_reward_tiers (
    day_number TINYINT UNSIGNED NOT NULL,
    coins      INT UNSIGNED     NOT NULL,
    xp         INT UNSIGNED     NOT NULL,
    PRIMARY KEY (day_number),
    CONSTRAINT ck_drt_day CHECK (day_number BETWEEN 1 AND 7)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- One row per claimed day: at most one per player and game day.
CREATE TABLE daily_reward_claims (
    id         BIGINT UNSIGNED  NOT NULL AUTO_INCREMENT,
    player_id  BIGINT UNSIGNED  NOT NULL,
    day        DATE             NOT NULL,
    streak     INT UNSIGNED     NOT NULL,
    tier_day   TINYINT UNSIGNED NOT NULL,
    claimed_at DATETIME(6)      NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_drc_player_day (player_id, day),
    CONSTRAINT fk_drc_player FOREIGN KEY (player_id) REFERENCES players (id) ON DELETE CASCADE,
    CONSTRAINT ck_drc_streak CHECK (streak >= 1),
    CONSTRAINT ck_drc_tier CHECK (tier_day BETWEEN 1 AND 7)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- Every coin and xp granted, with its source: a completed quest
-- (source_id = player_daily_quests.id) or a daily reward claim
-- (source_id = daily_reward_claims.id). UNIQUE (source, source_id): a source
-- pays out at most once, whatever the application does.
CREATE TABLE reward_ledger (
    id         BIGINT UNSIGNED                NOT NULL AUTO_INCREMENT,
    player_id  BIGINT UNSIGNED                NOT NULL,
    source     ENUM('quest', 'daily_reward')  NOT NULL,
    source_id  BIGINT UNSIGNED                NOT NULL,
    coins      INT UNSIGNED                   NOT NULL,
    xp         INT UNSIGNED                   NOT NULL,
    granted_at DATETIME(6)                    NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_rl_source (source, source_id),
    KEY ix_rl_player (player_id, granted_at),
    CONSTRAINT fk_rl_player FOREIGN KEY (player_id) REFERENCES players (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
