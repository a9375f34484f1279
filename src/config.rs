//! Configuration: the only place that reads the environment (and `.env`).
//!
//! Invariants a reviewer can check in this file alone:
//! - every variable of the contract is read and validated here, once, at start-up;
//! - a bad value is an error that names the variable and never echoes a secret;
//! - `Debug` never prints the database password or the JWT secrets.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::jwks::Endpoint;

/// The JWT secret must be at least this long (RFC 7518 §3.2: a key as long as the hash).
pub const MIN_SECRET_BYTES: usize = 32;

/// Which browser origins may call the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cors {
    Any,
    Origins(Vec<String>),
}

/// A secret's bytes, which `Debug` never shows.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub Vec<u8>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// `tokio_postgres::Config`'s `Debug` (and so `postgres::Config`'s) shows a password as `_`.
#[derive(Clone, Debug)]
pub struct Config {
    /// The pool's connections are `tokio_postgres` clients (see `db::Conn`).
    pub database: tokio_postgres::Config,
    /// Where migrations run; the same database as `database`, but may bypass a pooler.
    pub migration_database: postgres::Config,
    /// The HS256 secret; optional when `JWKS_URL` is set (then asymmetric tokens only).
    pub secret: Option<Secret>,
    pub secret_previous: Option<Secret>,
    /// Better Auth's JWKS (`JWKS_URL`), and how often it is fetched again.
    pub jwks: Option<Endpoint>,
    pub jwks_refresh: Duration,
    pub host: String,
    pub port: u16,
    pub cors: Cors,
    pub pool_size: u32,
    pub pool_timeout: Duration,
    /// `DB_STATEMENT_TIMEOUT_MS`: PostgreSQL's `statement_timeout` on the pool's connections; a
    /// statement without an answer a second after it is given up on the client's side too.
    pub statement_timeout: Duration,
    /// `DB_PREPARED_STATEMENTS`: prepare each statement once per connection (`Some(true)`)
    /// instead of sending it unnamed, and so planned, with every execution (`Some(false)`);
    /// `None` (`auto`) prepares unless a transaction pooler is found in front of PostgreSQL.
    pub prepared_statements: Option<bool>,
    pub workers: usize,
    pub max_connections: usize,
    pub idle_timeout: Duration,
    pub request_timeout: Duration,
    pub jwt_issuer: Option<String>,
    pub jwt_audience: Option<String>,
    pub jwt_leeway_seconds: u64,
}

/// A configuration problem: which variable, and what is wrong with it.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "configuration error: {} {}", self.variable, self.problem)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads the process environment, falling back to `.env` in the working directory.
    pub fn from_env() -> Result<Config, ConfigError> {
        let dotenv: HashMap<String, String> = match dotenvy::from_path_iter(".env") {
            Ok(iter) => iter
                .collect::<Result<_, _>>()
                .map_err(|e| ConfigError { variable: ".env", problem: format!("cannot be read: {e}") })?,
            Err(_) => HashMap::new(), // no .env file: the environment alone
        };
        Config::from_lookup(|name| std::env::var(name).ok().or_else(|| dotenv.get(name).cloned()))
    }

    /// Builds a configuration from any lookup (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let database = database_url(&get, "DATABASE_URL")?.ok_or_else(|| missing("DATABASE_URL"))?;
        let migration_database =
            database_url(&get, "DATABASE_MIGRATION_URL")?.unwrap_or_else(|| database.clone()).into();
        let secret_previous = secret(&get, "BETTER_AUTH_SECRET_PREVIOUS")?;
        let jwks = get("JWKS_URL")
            .map(|url| Endpoint::parse(&url).map_err(|problem| invalid("JWKS_URL", problem)))
            .transpose()?;
        let secret = secret(&get, "BETTER_AUTH_SECRET")?;
        if secret.is_none() && jwks.is_none() {
            return Err(ConfigError {
                variable: "BETTER_AUTH_SECRET",
                problem: "is required (or JWKS_URL)".to_owned(),
            });
        }
        let cors = match get("CORS_ORIGINS").as_deref().map(str::trim) {
            None => Cors::Origins(vec!["http://localhost:3000".to_owned()]),
            Some("*") => Cors::Any,
            Some(list) => Cors::Origins(origins(list)?),
        };
        Ok(Config {
            database,
            migration_database,
            secret,
            secret_previous,
            jwks,
            jwks_refresh: Duration::from_secs(number(&get, "JWKS_REFRESH_SECONDS", 300, 10..=86_400)?),
            host: get("HOST").unwrap_or_else(|| "127.0.0.1".to_owned()),
            port: number(&get, "PORT", 8000, 0..=65535)?,
            cors,
            pool_size: number(&get, "DB_POOL_SIZE", 16, 1..=1000)?,
            pool_timeout: Duration::from_millis(number(&get, "DB_POOL_TIMEOUT_MS", 2000, 1..=60_000)?),
            statement_timeout: Duration::from_millis(number(&get, "DB_STATEMENT_TIMEOUT_MS", 5000, 100..=600_000)?),
            prepared_statements: match get("DB_PREPARED_STATEMENTS").as_deref().map(str::trim) {
                None | Some("auto") => None,
                Some("true") => Some(true),
                Some("false") => Some(false),
                Some(_) => return Err(invalid("DB_PREPARED_STATEMENTS", "must be auto, true or false")),
            },
            workers: number(&get, "WORKERS", 32, 1..=4096)?,
            max_connections: number(&get, "MAX_CONNECTIONS", 4096, 1..=100_000)?,
            idle_timeout: Duration::from_secs(number(&get, "IDLE_TIMEOUT_SECONDS", 60, 1..=3600)?),
            request_timeout: Duration::from_secs(number(&get, "REQUEST_TIMEOUT_SECONDS", 30, 1..=3600)?),
            jwt_issuer: non_empty(&get, "JWT_ISSUER")?,
            jwt_audience: non_empty(&get, "JWT_AUDIENCE")?,
            jwt_leeway_seconds: number(&get, "JWT_LEEWAY_SECONDS", 30, 0..=3600)?,
        })
    }
}

impl Config {
    /// Where a process on this machine reaches the server (a wildcard host means loopback).
    pub fn local_address(&self) -> Option<std::net::SocketAddr> {
        let host = match self.host.as_str() {
            "0.0.0.0" => "127.0.0.1",
            "::" | "[::]" => "::1",
            host => host,
        };
        std::net::ToSocketAddrs::to_socket_addrs(&(host, self.port)).ok()?.next()
    }
}

fn missing(variable: &'static str) -> ConfigError {
    ConfigError { variable, problem: "is required".to_owned() }
}

fn invalid(variable: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError { variable, problem: problem.into() }
}

/// A `postgres://` URL. Errors describe the problem without echoing the URL (it holds a password).
fn database_url(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
) -> Result<Option<tokio_postgres::Config>, ConfigError> {
    let Some(url) = get(variable) else {
        return Ok(None);
    };
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(invalid(variable, "must be a postgres:// or postgresql:// URL"));
    }
    let mut config = tokio_postgres::Config::from_str(&url).map_err(|e| {
        // The parser's messages name the bad parameter, never its value.
        invalid(variable, format!("is not a valid PostgreSQL URL ({e})"))
    })?;
    if config.get_hosts().is_empty() {
        return Err(invalid(variable, "must name a host"));
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(5));
    }
    if config.get_application_name().is_none() {
        config.application_name("todo-api");
    }
    // Detect dead peers (network partitions): on idle connections by keepalives, on busy
    // ones by how long sent data may stay unacknowledged.
    config.keepalives(true).keepalives_idle(Duration::from_secs(30)).keepalives_interval(Duration::from_secs(5));
    config.keepalives_retries(3);
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(Duration::from_secs(10));
    }
    Ok(Some(config))
}

fn secret(get: &impl Fn(&str) -> Option<String>, variable: &'static str) -> Result<Option<Secret>, ConfigError> {
    match get(variable) {
        None => Ok(None),
        Some(value) if value.len() < MIN_SECRET_BYTES => {
            Err(invalid(variable, format!("must be at least {MIN_SECRET_BYTES} bytes")))
        }
        Some(value) => Ok(Some(Secret(value.into_bytes()))),
    }
}

fn number<T: FromStr + PartialOrd + fmt::Display>(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, ConfigError> {
    let Some(raw) = get(variable) else {
        return Ok(default);
    };
    match raw.trim().parse::<T>() {
        Ok(value) if range.contains(&value) => Ok(value),
        _ => Err(invalid(variable, format!("must be a whole number from {} to {}", range.start(), range.end()))),
    }
}

fn non_empty(get: &impl Fn(&str) -> Option<String>, variable: &'static str) -> Result<Option<String>, ConfigError> {
    match get(variable) {
        Some(value) if value.is_empty() => Err(invalid(variable, "must not be empty when set")),
        other => Ok(other),
    }
}

fn origins(list: &str) -> Result<Vec<String>, ConfigError> {
    let origins: Vec<String> = list.split(',').map(str::trim).filter(|o| !o.is_empty()).map(str::to_owned).collect();
    let well_formed =
        |o: &String| (o.starts_with("http://") || o.starts_with("https://")) && !o.ends_with('/') && !o.contains('*');
    if origins.is_empty() || !origins.iter().all(well_formed) {
        return Err(invalid(
            "CORS_ORIGINS",
            "must be * or a comma-separated list of origins like https://app.example.com",
        ));
    }
    Ok(origins)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    fn minimal() -> Vec<(&'static str, &'static str)> {
        vec![("DATABASE_URL", "postgres://u:hunter2@localhost/db"), ("BETTER_AUTH_SECRET", SECRET)]
    }

    #[test]
    fn defaults_follow_the_contract() {
        let c = config(&minimal()).unwrap();
        assert_eq!((c.host.as_str(), c.port), ("127.0.0.1", 8000));
        assert_eq!(c.cors, Cors::Origins(vec!["http://localhost:3000".into()]));
        assert_eq!((c.pool_size, c.pool_timeout, c.workers), (16, Duration::from_millis(2000), 32));
        assert_eq!(c.statement_timeout, Duration::from_millis(5000));
        assert_eq!(c.jwt_leeway_seconds, 30);
        assert_eq!(c.prepared_statements, None, "prepared unless a pooler is found");
        assert_eq!((c.jwt_issuer, c.jwt_audience, c.secret_previous), (None, None, None));
    }

    #[test]
    fn each_bad_variable_is_named() {
        let cases: &[(&str, &str, &str)] = &[
            ("DATABASE_URL", "", "DATABASE_URL"),
            ("DATABASE_URL", "mysql://x/y", "DATABASE_URL"),
            ("DATABASE_URL", "postgres://u:p@h/db?sslmode=bogus", "DATABASE_URL"),
            ("BETTER_AUTH_SECRET", "short", "BETTER_AUTH_SECRET"),
            ("BETTER_AUTH_SECRET_PREVIOUS", "short", "BETTER_AUTH_SECRET_PREVIOUS"),
            ("PORT", "http", "PORT"),
            ("PORT", "70000", "PORT"),
            ("DB_POOL_SIZE", "0", "DB_POOL_SIZE"),
            ("DB_POOL_TIMEOUT_MS", "-1", "DB_POOL_TIMEOUT_MS"),
            ("DB_STATEMENT_TIMEOUT_MS", "99", "DB_STATEMENT_TIMEOUT_MS"),
            ("DB_STATEMENT_TIMEOUT_MS", "600001", "DB_STATEMENT_TIMEOUT_MS"),
            ("WORKERS", "many", "WORKERS"),
            ("DB_PREPARED_STATEMENTS", "yes", "DB_PREPARED_STATEMENTS"),
            ("JWKS_REFRESH_SECONDS", "5", "JWKS_REFRESH_SECONDS"),
            ("JWT_LEEWAY_SECONDS", "1.5", "JWT_LEEWAY_SECONDS"),
            ("CORS_ORIGINS", "localhost:3000", "CORS_ORIGINS"),
            ("JWT_ISSUER", "", "JWT_ISSUER"),
        ];
        for (name, value, expected) in cases {
            let mut vars = minimal();
            vars.retain(|(k, _)| k != name);
            vars.push((name, value));
            let err = config(&vars).expect_err(&format!("{name}={value} must be refused"));
            assert_eq!(err.variable, *expected, "{name}={value}");
        }
    }

    #[test]
    fn required_variables_are_named_when_missing() {
        let mut vars = minimal();
        vars.retain(|(k, _)| *k != "DATABASE_URL");
        assert_eq!(config(&vars).unwrap_err(), missing("DATABASE_URL"));
        let mut vars = minimal();
        vars.retain(|(k, _)| *k != "BETTER_AUTH_SECRET");
        assert_eq!(config(&vars).unwrap_err().variable, "BETTER_AUTH_SECRET");
        vars.push(("JWKS_URL", "https://auth.example.com/api/auth/jwks"));
        let jwks_only = config(&vars).unwrap();
        assert_eq!((jwks_only.secret, jwks_only.jwks_refresh), (None, Duration::from_secs(300)));
    }

    #[test]
    fn jwks_urls_are_https_or_loopback_http() {
        for ok in [
            "https://auth.example.com/api/auth/jwks",
            "https://auth.example.com:8443/jwks?x=1",
            "http://localhost:3000/api/auth/jwks",
            "http://127.0.0.1:3000/api/auth/jwks",
            "http://[::1]:3000/jwks",
        ] {
            assert!(Endpoint::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://auth.example.com/api/auth/jwks",
            "http://10.0.0.1/jwks",
            "ftp://auth.example.com/jwks",
            "auth.example.com/jwks",
            "https:///jwks",
            "https://user@auth.example.com/jwks",
            "https://auth.example.com:99999/jwks",
            "https://auth.example.com/a b",
        ] {
            let mut vars = minimal();
            vars.push(("JWKS_URL", bad));
            assert_eq!(config(&vars).unwrap_err().variable, "JWKS_URL", "{bad}");
        }
    }

    #[test]
    fn errors_and_debug_never_show_secrets() {
        let mut vars = minimal();
        vars.push(("DATABASE_URL", "postgres://u:hunter2@localhost/db?sslmode=bogus"));
        vars.remove(0);
        let err = config(&vars).unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "{err}");
        let debug = format!("{:?}", config(&minimal()).unwrap());
        assert!(!debug.contains("hunter2") && !debug.contains(SECRET), "{debug}");
    }

    #[test]
    fn cors_accepts_a_star_or_a_list() {
        let mut vars = minimal();
        vars.push(("CORS_ORIGINS", "*"));
        assert_eq!(config(&vars).unwrap().cors, Cors::Any);
        vars.pop();
        vars.push(("CORS_ORIGINS", "https://a.example, http://localhost:3000"));
        let expected = Cors::Origins(vec!["https://a.example".into(), "http://localhost:3000".into()]);
        assert_eq!(config(&vars).unwrap().cors, expected);
    }
}
