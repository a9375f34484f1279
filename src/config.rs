//! Configuration: the only place that reads the environment (and `.env`).
//!
//! Invariants a reviewer can check in this file alone:
//! - every variable of the contract is read and validated here, once, at start-up;
//! - a bad value is an error that names the variable and never echoes a secret;
//! - `Debug` never prints the database password or the JWT secrets;
//! - a database URL's `sslmode` and `sslrootcert` mean what they mean to libpq.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use openssl::x509::X509;
use postgres::config::SslMode;

use crate::jwks::Endpoint;
use crate::limits::{Net, loopback};

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

/// How a database server's certificate is checked, from `sslmode` and `sslrootcert` in its URL.
#[derive(Clone, Debug)]
pub enum TlsVerify {
    /// `disable`, `prefer`, `require`: encrypted when TLS is used, the certificate not checked.
    Unverified,
    /// `verify-ca` (and, as libpq does, `prefer` or `require` with an `sslrootcert` file): the
    /// certificate chains to a trusted root; the host name is not checked.
    VerifyCa(Roots),
    /// `verify-full`: the certificate chains to a trusted root and names the host connected to.
    VerifyFull(Roots),
}

/// The roots a server certificate must chain to.
#[derive(Clone)]
pub enum Roots {
    /// The system's (OpenSSL's default paths): no `sslrootcert`, or `sslrootcert=system`.
    System,
    /// Only the certificates of the `sslrootcert` file (PEM), read at start-up.
    File(String, Vec<X509>),
}

impl fmt::Debug for Roots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Roots::System => f.write_str("System"),
            Roots::File(path, certificates) => write!(f, "File({path:?}, {} certificates)", certificates.len()),
        }
    }
}

/// `tokio_postgres::Config`'s `Debug` (and so `postgres::Config`'s) shows a password as `_`.
#[derive(Clone, Debug)]
pub struct Config {
    /// The pool's connections are `tokio_postgres` clients (see `db::Conn`).
    pub database: tokio_postgres::Config,
    pub database_tls: TlsVerify,
    /// Where migrations run; the same database as `database`, but may bypass a pooler.
    pub migration_database: postgres::Config,
    pub migration_database_tls: TlsVerify,
    /// The variable `migration_database` was read from (`DATABASE_URL` when it is not set).
    pub migration_variable: &'static str,
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
    /// Requests a minute per user or address (`RATE_LIMIT_PER_MINUTE`); 0: no limits.
    pub rate_per_minute: u32,
    pub rate_burst: u32,
    /// Peers whose `X-Forwarded-For` is believed (`TRUSTED_PROXIES`).
    pub trusted_proxies: Vec<Net>,
    /// Whether `/metrics` is served (`METRICS`), and to which client addresses (`METRICS_ALLOW`).
    pub metrics: bool,
    pub metrics_allow: Vec<Net>,
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
        let (database, database_tls) = database_url(&get, "DATABASE_URL")?.ok_or_else(|| missing("DATABASE_URL"))?;
        let (migration_database, migration_database_tls, migration_variable) =
            match database_url(&get, "DATABASE_MIGRATION_URL")? {
                Some((config, tls)) => (config.into(), tls, "DATABASE_MIGRATION_URL"),
                None => (database.clone().into(), database_tls.clone(), "DATABASE_URL"),
            };
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
            database_tls,
            migration_database,
            migration_database_tls,
            migration_variable,
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
            rate_per_minute: number(&get, "RATE_LIMIT_PER_MINUTE", 600, 0..=1_000_000)?,
            rate_burst: number(&get, "RATE_LIMIT_BURST", 100, 1..=1_000_000)?,
            trusted_proxies: networks(&get, "TRUSTED_PROXIES")?.unwrap_or_default(),
            metrics: match get("METRICS").as_deref().map(str::trim) {
                None | Some("true") => true,
                Some("false") => false,
                Some(_) => return Err(invalid("METRICS", "must be true or false")),
            },
            metrics_allow: networks(&get, "METRICS_ALLOW")?.unwrap_or_else(loopback),
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
) -> Result<Option<(tokio_postgres::Config, TlsVerify)>, ConfigError> {
    let Some(url) = get(variable) else {
        return Ok(None);
    };
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(invalid(variable, "must be a postgres:// or postgresql:// URL"));
    }
    let (url, ssl_mode, tls) = tls_params(&url, variable)?;
    let mut config = tokio_postgres::Config::from_str(&url).map_err(|e| {
        // The parser's messages name the bad parameter (in the cause), never its value.
        let cause = std::error::Error::source(&e).map(|cause| format!(": {cause}")).unwrap_or_default();
        invalid(variable, format!("is not a valid PostgreSQL URL ({e}{cause})"))
    })?;
    if config.get_hosts().is_empty() {
        return Err(invalid(variable, "must name a host"));
    }
    config.ssl_mode(ssl_mode);
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
    Ok(Some((config, tls)))
}

/// Takes `sslmode` and `sslrootcert` out of a URL's query and reads them as libpq does, since
/// rust-postgres refuses `verify-ca`, `verify-full` and `sslrootcert`: returns the rest of the
/// URL, the `sslmode` it is connected with (`require` for the two `verify-` modes), and how the
/// certificate is checked. The query starts at the first `?` after the credentials, as in
/// rust-postgres's parser; the last of a repeated parameter counts, as there.
fn tls_params(url: &str, variable: &'static str) -> Result<(String, SslMode, TlsVerify), ConfigError> {
    let start = url.find("://").map_or(0, |i| i + 3);
    let host = url[start..].find('@').map_or(start, |i| start + i + 1);
    let Some(query) = url[host..].find('?').map(|i| host + i) else {
        return Ok((url.to_owned(), SslMode::Prefer, TlsVerify::Unverified));
    };
    let (mut kept, mut mode, mut root) = (Vec::new(), None, None);
    for param in url[query + 1..].split('&') {
        let (key, value) = param.split_once('=').unwrap_or((param, ""));
        match percent_decode(key).as_deref() {
            Some("sslmode") => mode = Some(value),
            Some("sslrootcert") => root = Some(value),
            _ => kept.push(param),
        }
    }
    let decode = |value: &str, name: &str| {
        percent_decode(value).ok_or_else(|| invalid(variable, format!("has an {name} that is not UTF-8")))
    };
    let mode = mode.map(|value| decode(value, "sslmode")).transpose()?;
    let root = root.map(|value| decode(value, "sslrootcert")).transpose()?;
    let rest = if kept.is_empty() { url[..query].to_owned() } else { format!("{}?{}", &url[..query], kept.join("&")) };

    // libpq: `sslrootcert=system` makes `verify-full` the default, and refuses any weaker mode.
    let system = root.as_deref() == Some("system");
    let mode = match mode.as_deref() {
        None if system => "verify-full",
        None => "prefer",
        Some(mode @ ("disable" | "prefer" | "require" | "verify-ca" | "verify-full")) => mode,
        Some(_) => {
            return Err(invalid(
                variable,
                "has an sslmode other than disable, prefer, require, verify-ca or verify-full",
            ));
        }
    };
    if system && mode != "verify-full" {
        return Err(invalid(variable, "has sslrootcert=system, which needs sslmode=verify-full (as in libpq)"));
    }
    let roots = match root {
        None => None,
        Some(_) if system => Some(Roots::System),
        Some(path) => Some(root_certificates(path, variable)?),
    };
    let ssl_mode = match mode {
        "disable" => SslMode::Disable,
        "prefer" => SslMode::Prefer,
        _ => SslMode::Require,
    };
    let verify = match (mode, roots) {
        ("verify-full", roots) => TlsVerify::VerifyFull(roots.unwrap_or(Roots::System)),
        ("verify-ca", roots) => TlsVerify::VerifyCa(roots.unwrap_or(Roots::System)),
        // libpq: with a root certificate file, `prefer` and `require` check the chain too.
        ("prefer" | "require", Some(roots)) => TlsVerify::VerifyCa(roots),
        _ => TlsVerify::Unverified,
    };
    Ok((rest, ssl_mode, verify))
}

/// The certificates of an `sslrootcert` file; unreadable, or without one, is a configuration error.
fn root_certificates(path: String, variable: &'static str) -> Result<Roots, ConfigError> {
    let pem = std::fs::read(&path)
        .map_err(|e| invalid(variable, format!("has an sslrootcert {path:?} that cannot be read ({e})")))?;
    match X509::stack_from_pem(&pem) {
        Ok(certificates) if !certificates.is_empty() => Ok(Roots::File(path, certificates)),
        _ => Err(invalid(variable, format!("has an sslrootcert {path:?} that holds no PEM certificate"))),
    }
}

/// `%XX` decoded, as URL parameters are; `None` when that is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let (bytes, mut decoded) = (text.as_bytes(), Vec::with_capacity(text.len()));
    let hex = |i: usize| bytes.get(i).and_then(|&b| char::from(b).to_digit(16));
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(high), Some(low)) => {
                decoded.push((high * 16 + low) as u8);
                i += 3;
            }
            (byte, ..) => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(decoded).ok()
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

/// A comma-separated list of addresses or networks (`10.0.0.0/8`); `None` when unset.
fn networks(get: &impl Fn(&str) -> Option<String>, variable: &'static str) -> Result<Option<Vec<Net>>, ConfigError> {
    let Some(list) = get(variable) else {
        return Ok(None);
    };
    let items = list.split(',').map(str::trim).filter(|item| !item.is_empty());
    let nets: Option<Vec<Net>> = items.map(Net::parse).collect();
    nets.map(Some)
        .ok_or_else(|| invalid(variable, "must be a comma-separated list of IP addresses or networks like 10.0.0.0/8"))
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
        assert_eq!((c.rate_per_minute, c.rate_burst, c.trusted_proxies), (600, 100, vec![]));
        assert!(c.metrics);
        assert_eq!(c.metrics_allow, loopback());
        let c = config(
            &[minimal(), vec![("TRUSTED_PROXIES", "10.0.0.0/8, ::1,"), ("METRICS_ALLOW", "0.0.0.0/0")]].concat(),
        )
        .unwrap();
        assert_eq!(c.trusted_proxies, [Net::parse("10.0.0.0/8").unwrap(), Net::parse("::1").unwrap()]);
        assert_eq!(c.metrics_allow, [Net::parse("0.0.0.0/0").unwrap()]);
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
            ("RATE_LIMIT_PER_MINUTE", "-1", "RATE_LIMIT_PER_MINUTE"),
            ("RATE_LIMIT_BURST", "0", "RATE_LIMIT_BURST"),
            ("TRUSTED_PROXIES", "10.0.0.1, proxy.internal", "TRUSTED_PROXIES"),
            ("METRICS", "yes", "METRICS"),
            ("METRICS_ALLOW", "10.0.0.0/40", "METRICS_ALLOW"),
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

    /// The check a URL asks for: `sslmode` as connected, and the variant of `TlsVerify`.
    fn tls_of(url: &str) -> Result<(SslMode, String), ConfigError> {
        let mut vars = minimal();
        vars[0].1 = url;
        let c = config(&vars)?;
        Ok((c.database.get_ssl_mode(), format!("{:?}", c.database_tls)))
    }

    /// A PEM file with one self-signed certificate, in a directory of its own.
    fn root_file(name: &str) -> String {
        use openssl::{asn1::Asn1Time, ec, hash::MessageDigest, nid::Nid, pkey::PKey, x509};
        let key = PKey::from_ec_key(
            ec::EcKey::generate(&ec::EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap()).unwrap(),
        )
        .unwrap();
        let mut subject = x509::X509NameBuilder::new().unwrap();
        subject.append_entry_by_text("CN", "a test root").unwrap();
        let subject = subject.build();
        let mut cert = x509::X509Builder::new().unwrap();
        cert.set_version(2).unwrap();
        cert.set_subject_name(&subject).unwrap();
        cert.set_issuer_name(&subject).unwrap();
        cert.set_pubkey(&key).unwrap();
        cert.set_not_before(&Asn1Time::days_from_now(0).unwrap()).unwrap();
        cert.set_not_after(&Asn1Time::days_from_now(1).unwrap()).unwrap();
        cert.sign(&key, MessageDigest::sha256()).unwrap();
        let dir = std::env::temp_dir().join(format!("todo-api-config-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("root.pem");
        std::fs::write(&path, cert.build().to_pem().unwrap()).unwrap();
        path.display().to_string()
    }

    #[test]
    fn sslmode_is_read_as_libpq_reads_it() {
        let root = root_file("modes");
        let file = format!("File({root:?}, 1 certificates)");
        let base = "postgres://u:hunter2@db.example.com/db";
        let cases: Vec<(String, SslMode, String)> = vec![
            (base.to_owned(), SslMode::Prefer, "Unverified".into()),
            (format!("{base}?sslmode=disable"), SslMode::Disable, "Unverified".into()),
            (format!("{base}?sslmode=prefer"), SslMode::Prefer, "Unverified".into()),
            (format!("{base}?sslmode=require"), SslMode::Require, "Unverified".into()),
            (format!("{base}?sslmode=verify-ca"), SslMode::Require, "VerifyCa(System)".into()),
            (format!("{base}?sslmode=verify-full"), SslMode::Require, "VerifyFull(System)".into()),
            (format!("{base}?sslmode=verify-full&sslrootcert={root}"), SslMode::Require, format!("VerifyFull({file})")),
            (format!("{base}?sslrootcert={root}&sslmode=verify-ca"), SslMode::Require, format!("VerifyCa({file})")),
            // libpq: a root file makes `require` (and `prefer`) check the chain.
            (format!("{base}?sslmode=require&sslrootcert={root}"), SslMode::Require, format!("VerifyCa({file})")),
            (format!("{base}?sslrootcert={root}"), SslMode::Prefer, format!("VerifyCa({file})")),
            // libpq 16: `sslrootcert=system` alone means verify-full.
            (format!("{base}?sslrootcert=system"), SslMode::Require, "VerifyFull(System)".into()),
            (format!("{base}?sslmode=verify-full&sslrootcert=system"), SslMode::Require, "VerifyFull(System)".into()),
            // Percent-encoded, repeated (the last counts), beside other parameters.
            (format!("{base}?ssl%6Dode=verify%2Dfull"), SslMode::Require, "VerifyFull(System)".into()),
            (format!("{base}?sslmode=require&sslmode=verify-full"), SslMode::Require, "VerifyFull(System)".into()),
            (format!("{base}?sslmode=verify-full&sslmode=disable"), SslMode::Disable, "Unverified".into()),
        ];
        for (url, ssl_mode, verify) in cases {
            assert_eq!(tls_of(&url).unwrap(), (ssl_mode, verify), "{url}");
        }
        let _ = std::fs::remove_dir_all(std::path::Path::new(&root).parent().unwrap());
    }

    #[test]
    fn the_other_parameters_of_a_verified_url_are_kept() {
        let mut vars = minimal();
        vars[0].1 = "postgres://u:p%3Fw?d@db.example.com:6543/neondb?channel_binding=require&sslmode=verify-full&application_name=x";
        let c = config(&vars).unwrap();
        assert_eq!(c.database.get_password(), Some(&b"p?w?d"[..]), "a ? in the credentials is not the query");
        assert_eq!(c.database.get_channel_binding(), postgres::config::ChannelBinding::Require);
        assert_eq!((c.database.get_application_name(), c.database.get_ports()), (Some("x"), &[6543][..]));
        assert_eq!((c.database.get_ssl_mode(), c.database.get_dbname()), (SslMode::Require, Some("neondb")));
        assert!(matches!(c.database_tls, TlsVerify::VerifyFull(Roots::System)));
        assert!(matches!(c.migration_database_tls, TlsVerify::VerifyFull(Roots::System)));
        assert_eq!(c.migration_variable, "DATABASE_URL");
        vars.push(("DATABASE_MIGRATION_URL", "postgres://u:p@db.example.com/neondb?sslmode=verify-ca"));
        let c = config(&vars).unwrap();
        assert!(matches!(c.migration_database_tls, TlsVerify::VerifyCa(Roots::System)));
        assert_eq!(c.migration_variable, "DATABASE_MIGRATION_URL");
    }

    #[test]
    fn a_bad_sslmode_or_sslrootcert_is_named_without_the_password() {
        let empty = root_file("empty").replace("root.pem", "empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let cases = [
            ("sslmode=verify".to_owned(), "sslmode other than"),
            ("sslmode=allow".to_owned(), "sslmode other than"),
            ("sslmode=%FF".to_owned(), "not UTF-8"),
            (
                "sslmode=verify-full&sslrootcert=/nonexistent/root.crt".to_owned(),
                "\"/nonexistent/root.crt\" that cannot be read",
            ),
            ("sslmode=verify-full&sslrootcert=/".to_owned(), "cannot be read"),
            (format!("sslmode=verify-ca&sslrootcert={empty}"), "holds no PEM certificate"),
            ("sslrootcert=system&sslmode=require".to_owned(), "needs sslmode=verify-full"),
            ("sslrootcert=system&sslmode=verify-ca".to_owned(), "needs sslmode=verify-full"),
            ("sslmode=require&sslcert=client.crt".to_owned(), "unknown option `sslcert`"),
        ];
        for variable in ["DATABASE_URL", "DATABASE_MIGRATION_URL"] {
            for (query, problem) in &cases {
                let url = format!("postgres://u:hunter2@db.example.com/db?{query}");
                let mut vars = minimal();
                vars.push((variable, &url));
                vars.retain(|(k, v)| *k != variable || *v == url);
                let err = config(&vars).expect_err(query);
                assert_eq!(err.variable, variable, "{query}");
                let message = err.to_string();
                assert!(message.contains(problem) && !message.contains("hunter2"), "{query}: {message}");
            }
        }
        let _ = std::fs::remove_dir_all(std::path::Path::new(&empty).parent().unwrap());
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
