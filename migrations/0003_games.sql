-- Saved games and AI-generated images (crate `server`, modules `legacy::saved_games`
-- and `legacy::images`, blocking through db-sync).
--
-- Lookup paths and the index serving each:
--   a game by id (load, ownership check)        PRIMARY
--   a player's games, newest first (list)       ix_sg_player_updated
--   a game's images (list)                      ix_gi_game
--   a player's images (FK, deletes)             ix_gi_player
--
-- State and metadata are the client's JSON, stored as sent (JSON is LONGTEXT with a
-- JSON_VALID check in MariaDB). The application caps a state at 1 MiB.

CREATE TABLE saved_games (
    id         BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    player_id  BIGINT UNSIGNED NOT NULL,
    state      JSON            NOT NULL,
    created_at DATETIME(6)     NOT NULL DEFAULT (UTC_TIMESTAMP(6)),
    updated_at DATETIME(6)     NOT NULL DEFAULT (UTC_TIMESTAMP(6)),
    PRIMARY KEY (id),
    KEY ix_sg_player_updated (player_id, updated_at),
    CONSTRAINT fk_sg_player FOREIGN KEY (player_id) REFERENCES players (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE generated_images (
    id         BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    player_id  BIGINT UNSIGNED NOT NULL,
    game_id    BIGINT UNSIGNED NOT NULL,
    prompt     TEXT            NOT NULL,
    url        VARCHAR(2048)   NOT NULL,
    metadata   JSON            NOT NULL,
    created_at DATETIME(6)     NOT NULL DEFAULT (UTC_TIMESTAMP(6)),
    PRIMARY KEY (id),
    KEY ix_gi_game (game_id, id),
    KEY ix_gi_player (player_id),
    CONSTRAINT fk_gi_player FOREIGN KEY (player_id) REFERENCES players (id) ON DELETE CASCADE,
    CONSTRAINT fk_gi_game FOREIGN KEY (game_id) REFERENCES saved_games (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
