//! The database: connection pool, the SQL files, migrations, and the one row mapping.
//!
//! Invariants a reviewer can check in this file alone:
//! - every statement the server runs is a file under `sql/`, embedded with `include_str!`;
//! - start-up prepares every statement, so a broken file stops the server and names itself;
//! - migrations run in one transaction under an advisory lock, and an applied file that
//!   changed stops start-up;
//! - a pooled connection is checked (with a timeout) before it is handed out, and closing one
//!   never blocks a request;
//! - the server's certificate is checked as the URL's `sslmode` asks (`tls`), and one that fails
//!   the check at start-up stops it.

use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use openssl::error::ErrorStack;
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
use openssl::x509::store::X509StoreBuilder;
use postgres::types::{ToSql, Type};
use postgres::{Client, Row, Statement};
use postgres_openssl::MakeTlsConnector;
use sha2::{Digest, Sha256};

use crate::config::{Config, Roots, TlsVerify};

pub type Pool = r2d2::Pool<Manager>;

/// One SQL file, known by its path under `sql/`.
#[derive(Debug, Clone, Copy)]
pub struct Sql {
    pub file: &'static str,
    pub text: &'static str,
}

macro_rules! sql {
    ($file:literal) => {
        Sql { file: $file, text: include_str!(concat!("../sql/", $file)) }
    };
}

pub const READY: Sql = sql!("ready.sql");
pub const INSERT_TASK: Sql = sql!("tasks/insert.sql");
pub const GET_TASK: Sql = sql!("tasks/get.sql");
pub const UPDATE_TASK: Sql = sql!("tasks/update.sql");
pub const DELETE_TASK: Sql = sql!("tasks/delete.sql");
pub const REMINDERS: Sql = sql!("tasks/reminders.sql");

/// A list statement: `sql/tasks/matching.sql` as the CTE `matching` (inlined where it is
/// used, so the count and the page are each planned on their own), with `$tags` appended to
/// it; then `sql/tasks/list.sql`, one of the orders a list is sorted in, and the page.
macro_rules! list {
    ($name:literal, $tags:literal, $order:literal) => {
        Sql {
            file: concat!("tasks/list.sql", $name, " ORDER BY ", $order),
            text: concat!(
                "WITH matching AS NOT MATERIALIZED (\n",
                include_str!("../sql/tasks/matching.sql"),
                $tags,
                ")\n",
                include_str!("../sql/tasks/list.sql"),
                "ORDER BY ",
                $order,
                "\nLIMIT $10 OFFSET $11"
            ),
        }
    };
}

/// The two list statements of a sort: without a tag filter, and with one, where `tags @> $9`
/// stands alone so that the plan can take it to the index tasks_user_tags.
macro_rules! sort {
    ($sort:literal, $descending:literal, $order:literal) => {
        ($sort, $descending, list!("", "", $order), list!(" (tagged)", "  AND tags @> $9\n", $order))
    };
}

/// The list statements for each `(sort, descending)`: one per order rather than a `CASE` per
/// key in one `ORDER BY`, because, prepared, such a statement's generic plan sorts every row
/// of the user's; each of these reads its page from an index in order (but `due_date`
/// descending, which has no index: README, "Tasks").
pub const LIST_TASKS: [(&str, bool, Sql, Sql); 10] = [
    sort!("created", false, "created_at, id"),
    sort!("created", true, "created_at DESC, id DESC"),
    sort!("updated", false, "updated_at, id"),
    sort!("updated", true, "updated_at DESC, id DESC"),
    sort!("title", false, "title, id"),
    sort!("title", true, "title DESC, id DESC"),
    // `matching.priority`, the enum, in its declared order: a bare `priority` would be the
    // output column, its text.
    sort!("priority", false, "matching.priority, id"),
    sort!("priority", true, "matching.priority DESC, id DESC"),
    sort!("due_date", false, "due_date, id"),
    sort!("due_date", true, "due_date DESC NULLS LAST, id DESC"),
];

/// Every statement the handlers run but the lists; start-up prepares each one, and the lists.
pub const ALL: &[Sql] = &[READY, INSERT_TASK, GET_TASK, UPDATE_TASK, DELETE_TASK, REMINDERS];

/// Schema migrations, applied in this order.
pub const MIGRATIONS: &[Sql] =
    &[sql!("migrations/0001_init.sql"), sql!("migrations/0002_task_fields.sql"), sql!("migrations/0003_text_rule.sql")];

/// Key of the advisory lock that serialises migrations across instances ("todo-api" in ASCII).
const MIGRATION_LOCK: i64 = 0x746f_646f_2d61_7069;

/// Opens `postgres::Client`s for the pool, with TLS when `sslmode` asks for it.
pub struct Manager {
    config: postgres::Config,
    tls: MakeTlsConnector,
    /// How long a pooled connection's liveness check may take before it counts as dead.
    check_timeout: Duration,
    statements: Statements,
}

/// How the pool's connections send statements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Statements {
    /// Unnamed: parsed and planned with every execution; works through any pooler.
    Unnamed,
    /// Prepared once per connection, through a pooler that keeps them (`DB_PREPARED_STATEMENTS=true`);
    /// PostgreSQL still plans a statement anew whenever it judges a custom plan better.
    Prepared,
    /// Prepared once per connection and planned once (`plan_cache_mode = force_generic_plan`, a
    /// session setting): only on connections found to be sessions of their own, not shared by a
    /// pooler, where a statement's generic plan is chosen over planning it every time.
    PreparedOnce,
}

impl r2d2::ManageConnection for Manager {
    type Connection = Conn;
    type Error = postgres::Error;

    fn connect(&self) -> Result<Conn, postgres::Error> {
        let mut client = self.config.connect(self.tls.clone())?;
        if self.statements == Statements::PreparedOnce {
            client.batch_execute("SET plan_cache_mode = force_generic_plan")?;
        }
        let statements = (self.statements != Statements::Unnamed).then(Vec::new);
        Ok(Conn { client: Some(client), alive_at: Instant::now(), statements })
    }

    /// At checkout: a connection not checked in the last `FRESH` is asked (one round trip, at
    /// most `check_timeout`). Under load that is a few checks a second per connection instead
    /// of one per request; a connection that died less than `FRESH` after its last check can
    /// still be handed out, and fails that one request with a 503.
    fn is_valid(&self, conn: &mut Conn) -> Result<(), postgres::Error> {
        if conn.alive_at.elapsed() < FRESH {
            return Ok(());
        }
        conn.is_valid(self.check_timeout)?;
        conn.alive_at = Instant::now();
        Ok(())
    }

    /// At return: a closed connection is dropped.
    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.is_closed()
    }
}

/// How recently a connection must have passed the checkout check to skip it.
const FRESH: Duration = Duration::from_millis(250);

/// A pooled connection. Closing a `postgres::Client` waits for the server to close the
/// socket, which a frozen server never does; so a connection is closed on a thread of its
/// own and the request that dropped it (say, after a failed liveness check) is not held up.
pub struct Conn {
    client: Option<Client>,
    /// When the connection last passed the checkout check.
    alive_at: Instant,
    /// With `DB_PREPARED_STATEMENTS=true`, the statements prepared on this connection so far.
    statements: Option<Vec<(&'static str, Statement)>>,
}

/// A statement's parameters, each with its type, so the server infers none.
pub type Params<'a> = [(&'a (dyn ToSql + Sync), Type)];

impl Conn {
    /// Runs one statement from `sql/` in one round trip. By default it goes unnamed: parsed and
    /// planned with every execution, which works through any pooler. With prepared statements
    /// on, it is prepared on this connection the first time (one more round trip, once) and
    /// afterwards only bound and run, without planning.
    pub fn query(&mut self, sql: Sql, params: &Params) -> Result<Vec<Row>, postgres::Error> {
        let client = self.client.as_mut().unwrap_or_else(|| unreachable!("taken only in drop"));
        let Some(statements) = &mut self.statements else {
            return client.query_typed(sql.text, params);
        };
        let statement = match statements.iter().find(|(file, _)| *file == sql.file) {
            Some((_, statement)) => statement.clone(),
            None => {
                let types: Vec<Type> = params.iter().map(|(_, t)| t.clone()).collect();
                let statement = client.prepare_typed(sql.text, &types)?;
                statements.push((sql.file, statement.clone()));
                statement
            }
        };
        let values: Vec<&(dyn ToSql + Sync)> = params.iter().map(|(value, _)| *value).collect();
        client.query(&statement, &values)
    }
}

impl Deref for Conn {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.client.as_ref().unwrap_or_else(|| unreachable!("taken only in drop"))
    }
}

impl DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut Client {
        self.client.as_mut().unwrap_or_else(|| unreachable!("taken only in drop"))
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let closing = std::thread::Builder::new().name("db-close".to_owned()).spawn(move || drop(client));
            if let Err(e) = closing {
                log::warn!("cannot close a database connection in the background: {e}");
            }
        }
    }
}

/// Logs why the pool could not connect (r2d2 itself keeps only the last message).
#[derive(Debug)]
struct LogConnectErrors;

impl r2d2::HandleError<postgres::Error> for LogConnectErrors {
    fn handle_error(&self, error: postgres::Error) {
        log::warn!("database connection failed: {}", with_cause(&error));
    }
}

/// A connection error with its cause (rust-postgres's message alone is only its kind, such as
/// "error performing TLS handshake"); a cause names neither password nor URL.
fn with_cause(error: &postgres::Error) -> String {
    match std::error::Error::source(error) {
        Some(cause) => format!("{error}: {cause}"),
        None => error.to_string(),
    }
}

/// TLS as libpq does it. `prefer` and `require`: encrypted, the server's certificate not
/// checked. `verify-ca`: the certificate must chain to the roots (the system's, or only those
/// of `sslrootcert`); `verify-full`: and name the host of the URL (OpenSSL's check, which
/// matches an IP address against the certificate's IP addresses). `channel_binding=require` in
/// the URL (as Neon gives it) binds authentication to the TLS session, so a man in the middle
/// cannot complete the login even unverified.
pub fn tls(verify: &TlsVerify) -> Result<MakeTlsConnector, ErrorStack> {
    // Verifies the peer against the system's roots unless told otherwise.
    let mut builder = SslConnector::builder(SslMethod::tls_client())?;
    // Read whole TLS records at once: without it OpenSSL reads each record's 5-byte header and
    // its body in two calls, and a `get` cost 35 µs more CPU (12,300 -> 17,200 req/s locally).
    builder.set_read_ahead(true);
    let roots = match verify {
        TlsVerify::Unverified => {
            builder.set_verify(SslVerifyMode::NONE);
            None
        }
        TlsVerify::VerifyCa(roots) | TlsVerify::VerifyFull(roots) => Some(roots),
    };
    if let Some(Roots::File(_, certificates)) = roots {
        let mut store = X509StoreBuilder::new()?;
        for certificate in certificates {
            store.add_cert(certificate.clone())?;
        }
        builder.set_cert_store(store.build());
    }
    let mut connector = MakeTlsConnector::new(builder.build());
    if let TlsVerify::VerifyCa(_) = verify {
        connector.set_callback(|connection, _host| {
            connection.set_verify_hostname(false);
            Ok(())
        });
    }
    Ok(connector)
}

/// Connects once, directly (not through the pool), for migrations and the statement check;
/// errors name `variable`, where `config` came from.
pub fn connect(config: &postgres::Config, verify: &TlsVerify, variable: &str) -> Result<Client, String> {
    let tls = tls(verify).map_err(|e| format!("TLS setup failed: {e}"))?;
    config.connect(tls).map_err(|e| format!("cannot connect to the database ({variable}): {}", with_cause(&e)))
}

/// Whether connecting failed because the server's certificate did not pass the check: a
/// configuration error, unlike a database that is down.
fn certificate_refused(error: &postgres::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        let refused = e
            .downcast_ref::<openssl::ssl::Error>()
            .and_then(openssl::ssl::Error::ssl_error)
            .is_some_and(|stack| stack.errors().iter().any(|e| e.reason() == Some("certificate verify failed")));
        if refused {
            return true;
        }
        cause = e.source();
    }
    false
}

/// A pool that connects lazily, so the server can start while the database is cold.
pub fn pool(config: &Config) -> Result<Pool, String> {
    let tls = tls(&config.database_tls).map_err(|e| format!("TLS setup failed: {e}"))?;
    let pooled = (config.prepared_statements != Some(false)).then(|| pooled(&config.database, &tls));
    if let Some(Err(e)) = &pooled
        && certificate_refused(e)
    {
        return Err(format!("cannot connect to the database (DATABASE_URL): {}", with_cause(e)));
    }
    let statements = match (config.prepared_statements, pooled) {
        (Some(false), _) | (_, None) => Statements::Unnamed,
        (_, Some(Ok(false))) => Statements::PreparedOnce,
        (Some(true), _) => Statements::Prepared,
        (None, Some(Ok(true))) => {
            log::info!("DATABASE_URL goes through a transaction pooler: statements are sent unnamed");
            Statements::Unnamed
        }
        (None, Some(Err(e))) => {
            log::warn!("cannot tell whether DATABASE_URL goes through a pooler ({e}): statements are sent unnamed");
            Statements::Unnamed
        }
    };
    // A quarter of the checkout budget, so a dead connection or two still leaves time for a
    // good one; at least 100 ms so that a busy but healthy server is not taken for dead.
    let check_timeout = (config.pool_timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
    let manager = Manager { config: config.database.clone(), tls, check_timeout, statements };
    Ok(r2d2::Pool::builder()
        .max_size(config.pool_size)
        .min_idle(Some(config.pool_size.min(4)))
        .connection_timeout(config.pool_timeout)
        .error_handler(Box::new(LogConnectErrors))
        .build_unchecked(manager))
}

/// Whether `config` reaches PostgreSQL through a pooler that runs one client's transactions on
/// several server connections (PgBouncer in transaction or statement mode): then a statement
/// prepared by one client may be missing, or be another client's under the same name, on the
/// server connection its next transaction gets. Two clients ask in turn for their backend's pid:
/// a direct connection (or session pooling) keeps one backend per client for good; a
/// transaction pooler hands them the server connection just freed, or another each time.
fn pooled(config: &postgres::Config, tls: &MakeTlsConnector) -> Result<bool, postgres::Error> {
    let (mut first, mut second) = (config.connect(tls.clone())?, config.connect(tls.clone())?);
    let mut backends = [Vec::new(), Vec::new()];
    for _ in 0..4 {
        for (client, seen) in [&mut first, &mut second].into_iter().zip(&mut backends) {
            // The simple protocol: no statement is prepared to ask.
            let rows = client.simple_query("SELECT pg_backend_pid()")?;
            seen.extend(rows.iter().filter_map(|message| match message {
                postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
                _ => None,
            }));
        }
    }
    let [first, second] = backends;
    let stable = |seen: &[String]| seen.windows(2).all(|pair| pair[0] == pair[1]);
    Ok(!stable(&first) || !stable(&second) || first.iter().any(|pid| second.contains(pid)))
}

/// Applies the migrations not yet applied, all in one transaction under an advisory lock,
/// so that several instances starting at once apply each file exactly once.
pub fn migrate(client: &mut Client) -> Result<(), String> {
    let fail = |what: &str, e: postgres::Error| format!("migration failed: {what}: {}", crate::error::db_cause(&e));
    let mut tx = client.transaction().map_err(|e| fail("begin", e))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).map_err(|e| fail("lock", e))?;
    // "relation already exists, skipping" on every start after the first is noise.
    tx.batch_execute("SET LOCAL client_min_messages = warning").map_err(|e| fail("settings", e))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             file text PRIMARY KEY,
             checksum text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .map_err(|e| fail("schema_migrations", e))?;
    for migration in MIGRATIONS {
        let checksum = hex(&Sha256::digest(migration.text.as_bytes()));
        let applied = tx
            .query_opt("SELECT checksum FROM schema_migrations WHERE file = $1", &[&migration.file])
            .map_err(|e| fail(migration.file, e))?;
        match applied {
            Some(row) => {
                let recorded: String = row.try_get(0).map_err(|e| fail(migration.file, e))?;
                if recorded != checksum {
                    return Err(format!(
                        "migration failed: {} was changed after it was applied (checksum {recorded}, file {checksum})",
                        migration.file
                    ));
                }
            }
            None => {
                log::info!("applying migration {}", migration.file);
                tx.batch_execute(migration.text).map_err(|e| fail(migration.file, e))?;
                tx.execute(
                    "INSERT INTO schema_migrations (file, checksum) VALUES ($1, $2)",
                    &[&migration.file, &checksum],
                )
                .map_err(|e| fail(migration.file, e))?;
            }
        }
    }
    tx.commit().map_err(|e| fail("commit", e))
}

/// Prepares every statement once, so a typo in `sql/` stops start-up and names the file.
pub fn check_statements(client: &mut Client) -> Result<(), String> {
    for sql in ALL.iter().chain(LIST_TASKS.iter().flat_map(|(_, _, plain, tagged)| [plain, tagged])) {
        client.prepare(sql.text).map_err(|e| format!("sql/{} does not prepare: {e}", sql.file))?;
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Isolation is enforced by the SQL itself: after every mention of the `tasks` table, a
    /// statement either restricts `user_id = $n` or (an insert) takes `user_id` from a parameter.
    #[test]
    fn every_statement_on_tasks_is_scoped_to_a_user() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/sql");
        let mut files = vec![];
        for sub in ["", "/tasks"] {
            for entry in std::fs::read_dir(format!("{dir}{sub}")).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "sql") {
                    files.push(path);
                }
            }
        }
        assert!(files.len() >= 8, "found the statements: {files:?}");
        for path in files {
            let text = std::fs::read_to_string(&path).unwrap();
            let code: String =
                text.lines().map(|l| l.split("--").next().unwrap_or_default()).collect::<Vec<_>>().join(" ");
            let code = code.split_whitespace().collect::<Vec<_>>().join(" ");
            for (i, _) in code.match_indices(" tasks") {
                let rest = &code[i..];
                let scoped = rest.contains("WHERE user_id = $") || rest.contains("WHERE id = $1 AND user_id = $2");
                let insert = code[..i].ends_with("INSERT INTO") && rest.starts_with(" tasks (user_id,");
                assert!(scoped || insert, "{}: a statement on tasks without a user_id restriction", path.display());
            }
        }
    }

    #[test]
    fn every_sql_file_is_embedded() {
        let on_disk =
            std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/sql/tasks")).map(|dir| dir.count()).unwrap_or(0);
        let embedded = ALL.iter().filter(|s| s.file.starts_with("tasks/")).count() + 2; // and list.sql, matching.sql
        assert_eq!(on_disk, embedded, "every file in sql/tasks must be listed in db::ALL");
    }
}
