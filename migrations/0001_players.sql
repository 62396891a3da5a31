-- Players: the account every other table hangs off. Deliberately generic:
-- retention (0002) and later features (saved games, images: 0003+) reference
-- players(id) and keep their own data in their own tables.
--
-- All DATETIME columns in this schema hold UTC (the application binds UTC
-- values; DATETIME is never converted by the session time zone).
CREATE TABLE players (
    id         BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    name       VARCHAR(32)     NOT NULL,
    created_at DATETIME(6)     NOT NULL DEFAULT (UTC_TIMESTAMP(6)),
    PRIMARY KEY (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
