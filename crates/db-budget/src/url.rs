//! `DATABASE_URL`, parsed once, with its password kept out of every message.

use std::fmt;
use std::path::{Path, PathBuf};

use percent_encoding::percent_decode_str;

use crate::config::ConfigError;

/// Where the database server is, and how to log in.
///
/// Both pools build their connection options from this one value, so they always talk
/// to the same server over the same transport. `Display` and `Debug` replace the
/// password with `***`; only [`DatabaseUrl::password`] returns it.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    host: String,
    port: u16,
    user: String,
    password: Option<String>,
    database: String,
    socket: Option<PathBuf>,
}

impl DatabaseUrl {
    /// Parses `mysql://user:password@host:port/database[?socket=/path/mysqld.sock]`
    /// (scheme `mysql` or `mariadb`; port defaults to 3306; user and password may be
    /// percent-encoded). With `socket`, both pools connect through that unix socket and
    /// host and port are ignored.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] for `DATABASE_URL` saying what is missing or wrong; the
    /// password in it is redacted.
    pub fn parse(raw: &str) -> Result<DatabaseUrl, ConfigError> {
        let err = |reason: &str| ConfigError::new("DATABASE_URL", raw, reason);
        let raw_trimmed = raw.trim();
        if raw_trimmed.is_empty() {
            return Err(err("it is empty"));
        }
        let url = url::Url::parse(raw_trimmed).map_err(|_| err("it is not a URL"))?;
        if !matches!(url.scheme(), "mysql" | "mariadb") {
            return Err(err("its scheme must be mysql://"));
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| err("it has no host"))?
            .trim_matches(|c| c == '[' || c == ']')
            .to_owned();
        let decode = |s: &str| {
            percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| err("its user or password is not valid percent-encoded UTF-8"))
        };
        let user = decode(url.username())?;
        if user.is_empty() {
            return Err(err("it has no user name"));
        }
        let password = url.password().map(decode).transpose()?;
        let database = url.path().trim_start_matches('/').to_owned();
        if database.is_empty() || database.contains('/') {
            return Err(err(
                "it must name one database, as in mysql://user@host/game",
            ));
        }
        let mut socket = None;
        for (key, value) in url.query_pairs() {
            match key.as_ref() {
                "socket" if !value.is_empty() => socket = Some(PathBuf::from(value.as_ref())),
                "socket" => return Err(err("its socket parameter is empty")),
                _ => {
                    return Err(err(&format!(
                        "its query parameter {key:?} is not supported (supported: socket)"
                    )));
                }
            }
        }
        Ok(DatabaseUrl {
            host,
            port: url.port().unwrap_or(3306),
            user,
            password,
            database,
            socket,
        })
    }

    /// Host name or address (ignored when [`DatabaseUrl::socket`] is set).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// TCP port, 3306 unless the URL says otherwise.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// User name, percent-decoded.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The password, percent-decoded. The only way to read it.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// The database (schema) name.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The unix socket to connect through, if the URL names one.
    pub fn socket(&self) -> Option<&Path> {
        self.socket.as_deref()
    }

    /// The same server and account with another database (tests: one database each).
    pub fn with_database(&self, database: &str) -> DatabaseUrl {
        DatabaseUrl {
            database: database.to_owned(),
            ..self.clone()
        }
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "mysql://{}", self.user)?;
        if self.password.is_some() {
            f.write_str(":***")?;
        }
        write!(f, "@{}:{}/{}", self.host, self.port, self.database)?;
        if let Some(s) = &self.socket {
            write!(f, "?socket={}", s.display())?;
        }
        Ok(())
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

/// Replaces the password of something that looks like a URL with `***`, for messages
/// about a value that did not parse.
pub(crate) fn redact(raw: &str) -> String {
    let scheme_end = raw.find("://").map(|i| i + 3);
    let (prefix, rest) = raw.split_at(scheme_end.unwrap_or(0));
    // `user:password@host`: everything between the first `:` and the last `@` is hidden
    // (a password may itself contain `@`, `?` or `/` when not percent-encoded).
    if let Some(at) = rest.rfind('@') {
        return match rest[..at].find(':') {
            Some(colon) => format!("{prefix}{}:***{}", &rest[..colon], &rest[at..]),
            None => raw.to_owned(),
        };
    }
    if scheme_end.is_none() {
        return raw.to_owned();
    }
    // No `@`: `host:3306` is a port, but `user:something` (a URL missing its `@`)
    // may be a password: when in doubt, hide it.
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.find(':') {
        Some(colon) if !authority[colon + 1..].chars().all(|c| c.is_ascii_digit()) => {
            format!(
                "{prefix}{}:***{}",
                &authority[..colon],
                &rest[authority_end..]
            )
        }
        _ => raw.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_url_parses_and_displays_without_its_password() {
        let u = DatabaseUrl::parse("mysql://app:s%40cret@db.internal:3307/game").unwrap();
        assert_eq!(u.user(), "app");
        assert_eq!(u.password(), Some("s@cret"));
        assert_eq!(
            (u.host(), u.port(), u.database()),
            ("db.internal", 3307, "game")
        );
        assert_eq!(u.to_string(), "mysql://app:***@db.internal:3307/game");
        assert!(!format!("{u:?}").contains("s@cret"));
        assert!(!format!("{u:?}").contains("s%40cret"));
    }

    #[test]
    fn a_socket_parameter_is_honoured() {
        let u = DatabaseUrl::parse("mysql://root@localhost/game?socket=/run/mysqld/mysqld.sock")
            .unwrap();
        assert_eq!(u.socket(), Some(Path::new("/run/mysqld/mysqld.sock")));
        assert_eq!(u.port(), 3306);
        assert_eq!(u.password(), None);
    }

    #[test]
    fn bad_urls_are_refused_without_echoing_the_password() {
        for bad in [
            "",
            "not a url",
            "postgres://u:hunter2@h/db",
            "mysql://u:hunter2@h",
            "mysql://u:hunter2@h/",
            "mysql://:hunter2@h/db",
            "mysql://u:hunter2@h/db?sslmode=require",
            "mysql://u:hunter2@h:99999/db",
        ] {
            let err = DatabaseUrl::parse(bad).unwrap_err();
            assert_eq!(err.variable(), "DATABASE_URL");
            let msg = err.to_string();
            assert!(!msg.contains("hunter2"), "{msg}");
            assert!(msg.contains("expected mysql://"), "{msg}");
        }
    }

    #[test]
    fn redact_keeps_everything_but_the_password() {
        assert_eq!(redact("mysql://u:pw@h:1/db"), "mysql://u:***@h:1/db");
        assert_eq!(redact("mysql://u@h/db"), "mysql://u@h/db");
        assert_eq!(redact("garbage"), "garbage");
        assert_eq!(redact("mysql://h:3306/db"), "mysql://h:3306/db");
        assert_eq!(redact("mysql://u:pwh/db"), "mysql://u:***/db");
        assert_eq!(redact("mysql://u:p@ss/w?rd@h/db"), "mysql://u:***@h/db");
        assert_eq!(redact("mysql//u:pw@h/db"), "mysql//u:***@h/db");
    }
}
