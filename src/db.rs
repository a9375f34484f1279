//! The database: connection pool, the SQL files, migrations, and the one row mapping.
//!
//! Invariants a reviewer can check in this file alone:
//! - every statement the server runs is a file under `sql/`, embedded with `include_str!`;
//! - start-up prepares every statement, so a broken file stops the server and names itself;
//! - migrations run in one transaction under an advisory lock, and an applied file that
//!   changed stops start-up;
//! - a pooled connection is checked (with a timeout) before it is handed out;
//! - every statement on a pooled connection runs under a deadline (`Conn::run`), and the server
//!   is asked for the same bound (`statement_timeout`) unless a pooler refuses the option;
//! - a connection that missed a deadline is dropped, and dropping it never waits for the server.
//! - the server's certificate is checked as the URL's `sslmode` asks (`tls`), and one that fails
//!   the check at start-up stops it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use openssl::error::ErrorStack;
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
use openssl::x509::store::X509StoreBuilder;
use postgres::types::{ToSql, Type};
use postgres::{Client, Row, SimpleQueryMessage, Statement};
use postgres_openssl::MakeTlsConnector;
use sha2::{Digest, Sha256};
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

use crate::config::{Config, Roots, TlsVerify};
use crate::error::db_cause;

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

/// Opens the pool's connections: with `statement_timeout` as a startup parameter, unless a
/// pooler refused it once; then without it for good.
pub struct Manager {
    /// `DATABASE_URL` with `-c statement_timeout=N` added to its startup `options`.
    timed: tokio_postgres::Config,
    /// `DATABASE_URL` as it is, for a pooler that refuses options it does not track.
    plain: tokio_postgres::Config,
    /// Set when a pooler refused `timed`: every connection after that is made from `plain`.
    refused: AtomicBool,
    tls: MakeTlsConnector,
    /// How long a connection's handshake may take (the URL's `connect_timeout`).
    handshake: Duration,
    /// How long a statement may go unanswered before its connection is given up.
    deadline: Duration,
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

impl Manager {
    /// A connection, with the statement timeout as a startup parameter unless a pooler refuses
    /// it: PgBouncer refuses startup options it does not track (1.18: `options` at all; later
    /// ones and Neon's pooler: parameters not in `track_extra_parameters`). Then the server-side
    /// timeout is left to the role's settings, and the client-side deadline still holds.
    fn open(&self) -> Result<Conn, QueryError> {
        if !self.refused.load(Ordering::Relaxed) {
            match Conn::open(&self.timed, &self.tls, self.handshake, self.deadline) {
                Err(QueryError::Db(e)) if refuses_options(&e) => {
                    if !self.refused.swap(true, Ordering::Relaxed) {
                        let said = e.as_db_error().map_or("", |db| db.message());
                        log::warn!(
                            "the database refuses statement_timeout as a startup parameter ({said}); connecting without \
                             it: statements are still given up after DB_STATEMENT_TIMEOUT_MS + 1 s on this side, but \
                             keep running on the server. To bound them there: ALTER ROLE ... SET statement_timeout, \
                             or PgBouncer's track_extra_parameters = statement_timeout"
                        );
                    }
                }
                opened => return opened,
            }
        }
        Conn::open(&self.plain, &self.tls, self.handshake, self.deadline)
    }
}

/// Whether a connection was refused for a startup parameter (PgBouncer: "unsupported startup
/// parameter: options", or "... in options: statement_timeout"; SQLSTATE 08P01).
fn refuses_options(e: &postgres::Error) -> bool {
    e.as_db_error().is_some_and(|db| {
        db.code().code().starts_with("08") && db.message().to_lowercase().contains("unsupported startup parameter")
    })
}

impl r2d2::ManageConnection for Manager {
    type Connection = Conn;
    type Error = QueryError;

    fn connect(&self) -> Result<Conn, QueryError> {
        let mut conn = self.open()?;
        if self.statements == Statements::PreparedOnce {
            conn.run(conn.deadline, |client| client.batch_execute("SET plan_cache_mode = force_generic_plan"))?;
        }
        conn.statements = (self.statements != Statements::Unnamed).then(Vec::new);
        Ok(conn)
    }

    /// At checkout: a connection not checked in the last `FRESH` is asked (one round trip, at
    /// most `check_timeout`). Under load that is a few checks a second per connection instead
    /// of one per request; a connection that died less than `FRESH` after its last check can
    /// still be handed out, and fails that one request with a 503.
    fn is_valid(&self, conn: &mut Conn) -> Result<(), QueryError> {
        if conn.alive_at.elapsed() < FRESH {
            return Ok(());
        }
        conn.ping("", self.check_timeout)?;
        conn.alive_at = Instant::now();
        Ok(())
    }

    /// At return: a closed connection, or one given up on, is dropped.
    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.broken || conn.client().is_closed()
    }
}

/// How recently a connection must have passed the checkout check to skip it.
const FRESH: Duration = Duration::from_millis(250);

/// How long a connection in good order may take to say goodbye when it is dropped.
const GOODBYE: Duration = Duration::from_millis(100);

/// A connection: a `tokio_postgres` client and a runtime of its own (one thread: the caller's),
/// which is what a `postgres::Client` is inside, but every statement here runs under a
/// deadline. A statement past it gives the connection up: it is marked broken (the pool then
/// drops it) and dropping it closes its socket at once, whatever the server does.
pub struct Conn {
    /// `None` only while it is dropped.
    client: Option<tokio_postgres::Client>,
    /// The task that moves the connection's bytes; it runs while a statement is waited for.
    connection: JoinHandle<Result<(), postgres::Error>>,
    runtime: Runtime,
    /// How long a statement may go unanswered.
    deadline: Duration,
    /// Set when a statement missed its deadline: the connection is out of step for good.
    broken: bool,
    /// When the connection last passed the checkout check.
    alive_at: Instant,
    /// With `DB_PREPARED_STATEMENTS=true`, the statements prepared on this connection so far.
    statements: Option<Vec<(&'static str, Statement)>>,
}

/// A statement's parameters, each with its type, so the server infers none.
pub type Params<'a> = [(&'a (dyn ToSql + Sync), Type)];

/// Why a statement (or a connection) failed.
#[derive(Debug)]
pub enum QueryError {
    /// What PostgreSQL, or the connection, said.
    Db(postgres::Error),
    /// No answer within this long: the connection is given up.
    Deadline(Duration),
    /// The connection's runtime could not be made (out of threads or descriptors).
    Runtime(std::io::Error),
}

impl QueryError {
    /// PostgreSQL's own error, if that is what this is.
    pub fn as_db_error(&self) -> Option<&postgres::error::DbError> {
        match self {
            QueryError::Db(e) => e.as_db_error(),
            _ => None,
        }
    }
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueryError::Db(e) => f.write_str(&db_cause(e)),
            QueryError::Deadline(after) => write!(f, "no answer within {} ms", after.as_millis()),
            QueryError::Runtime(e) => write!(f, "cannot start a connection's runtime: {e}"),
        }
    }
}

impl std::error::Error for QueryError {}

impl From<postgres::Error> for QueryError {
    fn from(e: postgres::Error) -> QueryError {
        QueryError::Db(e)
    }
}

impl Conn {
    /// Connects, the whole handshake (TCP, TLS, authentication) within `handshake`.
    fn open(
        config: &tokio_postgres::Config,
        tls: &MakeTlsConnector,
        handshake: Duration,
        deadline: Duration,
    ) -> Result<Conn, QueryError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(QueryError::Runtime)?;
        let (client, connection) = match runtime.block_on(within(handshake, config.connect(tls.clone()))) {
            Ok(Ok(connected)) => connected,
            failed => {
                // Not waiting for a host-name lookup that may still run on the runtime's threads.
                runtime.shutdown_background();
                return Err(match failed {
                    Ok(Err(e)) => QueryError::Db(e),
                    _ => QueryError::Deadline(handshake),
                });
            }
        };
        let connection = runtime.spawn(connection);
        let (client, alive_at) = (Some(client), Instant::now());
        Ok(Conn { client, connection, runtime, deadline, broken: false, alive_at, statements: None })
    }

    fn client(&self) -> &tokio_postgres::Client {
        self.client.as_ref().unwrap_or_else(|| unreachable!("taken only in drop"))
    }

    /// Runs `work` on this connection within `limit`; past it, the connection is broken.
    fn run<'a, T, F>(
        &'a mut self,
        limit: Duration,
        work: impl FnOnce(&'a tokio_postgres::Client) -> F,
    ) -> Result<T, QueryError>
    where
        F: Future<Output = Result<T, postgres::Error>>,
    {
        let client = self.client.as_ref().unwrap_or_else(|| unreachable!("taken only in drop"));
        match self.runtime.block_on(within(limit, work(client))) {
            Ok(answer) => answer.map_err(QueryError::Db),
            Err(_) => {
                self.broken = true;
                Err(QueryError::Deadline(limit))
            }
        }
    }

    /// Runs one statement from `sql/` in one round trip. By default it goes unnamed: parsed and
    /// planned with every execution, which works through any pooler. With prepared statements
    /// on, it is prepared on this connection the first time (one more round trip, once) and
    /// afterwards only bound and run, without planning.
    pub fn query(&mut self, sql: Sql, params: &Params) -> Result<Vec<Row>, QueryError> {
        let Some(statements) = &self.statements else {
            return self.run(self.deadline, |client| client.query_typed(sql.text, params));
        };
        let statement = match statements.iter().find(|(file, _)| *file == sql.file) {
            Some((_, statement)) => statement.clone(),
            None => {
                let types: Vec<Type> = params.iter().map(|(_, t)| t.clone()).collect();
                let statement = self.run(self.deadline, |client| client.prepare_typed(sql.text, &types))?;
                self.statements.get_or_insert_default().push((sql.file, statement.clone()));
                statement
            }
        };
        let values: Vec<&(dyn ToSql + Sync)> = params.iter().map(|(value, _)| *value).collect();
        self.run(self.deadline, |client| client.query(&statement, &values))
    }

    /// Runs `text` with the simple protocol (nothing prepared), under the deadline.
    pub fn simple_query(&mut self, text: &str) -> Result<Vec<SimpleQueryMessage>, QueryError> {
        self.run(self.deadline, |client| client.simple_query(text))
    }

    /// Whether the database answers `text` (simple protocol) within `within`.
    pub fn ping(&mut self, text: &str, within: Duration) -> Result<(), QueryError> {
        self.run(within, |client| client.simple_query(text)).map(drop)
    }
}

/// `work`, or `Elapsed` after `limit`. The timer is made inside the future, where the
/// runtime that drives it is current.
async fn within<F: Future>(limit: Duration, work: F) -> Result<F::Output, tokio::time::error::Elapsed> {
    tokio::time::timeout(limit, work).await
}

impl Drop for Conn {
    /// A connection in good order says goodbye (PostgreSQL's Terminate; no answer is awaited),
    /// for `GOODBYE` at most. One that missed a deadline is just closed: dropping the runtime
    /// drops the connection's task, and with it the socket, without waiting for the server.
    fn drop(&mut self) {
        drop(self.client.take()); // the connection's last client gone, it terminates
        if !self.broken {
            let _ = self.runtime.block_on(within(GOODBYE, &mut self.connection));
        }
    }
}

/// Logs why the pool could not connect (r2d2 itself keeps only the last message).
#[derive(Debug)]
struct LogConnectErrors;

impl r2d2::HandleError<QueryError> for LogConnectErrors {
    fn handle_error(&self, error: QueryError) {
        log::warn!("database connection failed: {error}");
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
    config.connect(tls).map_err(|e| format!("cannot connect to the database ({variable}): {}", db_cause(&e)))
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

/// The handshake's bound: the URL's `connect_timeout` (config.rs sets 5 s when it has none).
fn handshake(config: &tokio_postgres::Config) -> Duration {
    config.get_connect_timeout().copied().unwrap_or(Duration::from_secs(5))
}

/// A pool that connects lazily, so the server can start while the database is cold.
pub fn pool(config: &Config) -> Result<Pool, String> {
    let tls = tls(&config.database_tls).map_err(|e| format!("TLS setup failed: {e}"))?;
    let mut timed = config.database.clone();
    let option = format!("-c statement_timeout={}", config.statement_timeout.as_millis());
    timed.options(config.database.get_options().map_or(option.clone(), |options| format!("{options} {option}")));
    // A quarter of the checkout budget, so a dead connection or two still leaves time for a
    // good one; at least 100 ms so that a busy but healthy server is not taken for dead.
    let check_timeout = (config.pool_timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
    let mut manager = Manager {
        timed,
        plain: config.database.clone(),
        refused: AtomicBool::new(false),
        tls,
        handshake: handshake(&config.database),
        // The server's own timeout answers first when it can; a second later, nothing came.
        deadline: config.statement_timeout + Duration::from_secs(1),
        check_timeout,
        statements: Statements::Unnamed,
    };
    let pooled = (config.prepared_statements != Some(false)).then(|| pooled(&manager));
    if let Some(Err(QueryError::Db(e))) = &pooled
        && certificate_refused(e)
    {
        return Err(format!("cannot connect to the database (DATABASE_URL): {}", db_cause(e)));
    }
    manager.statements = match (config.prepared_statements, pooled) {
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
    Ok(r2d2::Pool::builder()
        .max_size(config.pool_size)
        .min_idle(Some(config.pool_size.min(4)))
        .connection_timeout(config.pool_timeout)
        .error_handler(Box::new(LogConnectErrors))
        .build_unchecked(manager))
}

/// Opens the readiness check's own connection: not one of the pool's, so that a flood of
/// probes cannot take connections from requests, named `<application_name>-ready`, and without
/// the statement timeout (its one statement has a client-side deadline of its own).
pub struct Connector {
    config: tokio_postgres::Config,
    tls: MakeTlsConnector,
}

impl Connector {
    pub fn readiness(config: &Config) -> Result<Connector, String> {
        let mut database = config.database.clone();
        let name = format!("{}-ready", database.get_application_name().unwrap_or("todo-api"));
        database.application_name(&name);
        let tls = tls(&config.database_tls).map_err(|e| format!("TLS setup failed: {e}"))?;
        Ok(Connector { config: database, tls })
    }

    /// A connection whose handshake, and every statement, takes at most `within`.
    pub fn open(&self, within: Duration) -> Result<Conn, QueryError> {
        Conn::open(&self.config, &self.tls, within.min(handshake(&self.config)), within)
    }
}

/// Whether `manager`'s connections reach PostgreSQL through a pooler that runs one client's
/// transactions on several server connections (PgBouncer in transaction or statement mode): then
/// a statement prepared by one client may be missing, or be another client's under the same name,
/// on the server connection its next transaction gets. Two clients ask in turn for their
/// backend's pid: a direct connection (or session pooling) keeps one backend per client for good;
/// a transaction pooler hands them the server connection just freed, or another each time.
fn pooled(manager: &Manager) -> Result<bool, QueryError> {
    let (mut first, mut second) = (manager.open()?, manager.open()?);
    let mut backends = [Vec::new(), Vec::new()];
    for _ in 0..4 {
        for (conn, seen) in [&mut first, &mut second].into_iter().zip(&mut backends) {
            // The simple protocol: no statement is prepared to ask.
            let rows = conn.simple_query("SELECT pg_backend_pid()")?;
            seen.extend(rows.iter().filter_map(|message| match message {
                SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
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
