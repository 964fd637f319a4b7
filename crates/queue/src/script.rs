//! Several statements sent as one, where the backend allows it.
//!
//! sqlx runs each SQLite connection on its own thread: every statement is a
//! round trip to that thread and back, two thread wake-ups on a machine
//! whose cores are also encrypting. Measured on the queue's hot path, those
//! wake-ups were the largest single cost. SQLite (through sqlx) runs the
//! statements of one query string in order, each binding its `$N` from the
//! same arguments, so a [`Script`] joins its statements into one string
//! with renumbered parameters: one round trip. PostgreSQL's prepared
//! statements hold one command each, so there it runs them one by one
//! (on the same connection and transaction), which means the same thing.

use sealgate_store::Backend;
use sqlx::AnyConnection;

/// A value bound to a statement of a [`Script`].
#[derive(Debug, Clone)]
pub(crate) enum Value {
    Int(i64),
    OptInt(Option<i64>),
    Text(String),
    OptText(Option<String>),
    Blob(Vec<u8>),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<Option<i64>> for Value {
    fn from(v: Option<i64>) -> Self {
        Value::OptInt(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_string())
    }
}
impl From<Option<&str>> for Value {
    fn from(v: Option<&str>) -> Self {
        Value::OptText(v.map(str::to_string))
    }
}
impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Self {
        Value::Blob(v.to_vec())
    }
}

/// Statements with their own `$1..$n` parameters, run in order.
#[derive(Default)]
pub(crate) struct Script {
    statements: Vec<(&'static str, Vec<Value>)>,
}

impl Script {
    pub(crate) fn new() -> Script {
        Script::default()
    }

    /// Adds `sql`, whose parameters `$1..$n` are `values`.
    pub(crate) fn push(&mut self, sql: &'static str, values: Vec<Value>) -> &mut Self {
        self.statements.push((sql, values));
        self
    }

    /// Runs every statement; returns the rows they changed, in total.
    pub(crate) async fn run(self, conn: &mut AnyConnection, backend: Backend) -> sqlx::Result<u64> {
        match backend {
            Backend::Sqlite if self.statements.len() > 1 => {
                let (sql, values) = self.joined();
                let done = bind(sqlx::query(sqlx::AssertSqlSafe(sql)), values)
                    .execute(&mut *conn)
                    .await?;
                Ok(done.rows_affected())
            }
            _ => {
                let mut n = 0;
                for (sql, values) in self.statements {
                    n += bind(sqlx::query(sql), values)
                        .execute(&mut *conn)
                        .await?
                        .rows_affected();
                }
                Ok(n)
            }
        }
    }

    /// One string, each statement's `$k` renumbered after the parameters
    /// of the statements before it, and every value in that order.
    fn joined(self) -> (String, Vec<Value>) {
        let mut sql = String::new();
        let mut all = Vec::new();
        for (s, values) in self.statements {
            renumber(s, all.len(), &mut sql);
            sql.push_str(";\n");
            all.extend(values);
        }
        (sql, all)
    }
}

/// Appends `sql` with every `$k` written as `$(k + offset)`. The queue's
/// statements are constants with no `$` inside literals.
fn renumber(sql: &str, offset: usize, out: &mut String) {
    let mut rest = sql;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..=i]);
        rest = &rest[i + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let k: usize = rest[..digits]
            .parse()
            .expect("a $ is followed by its number");
        out.push_str(&(k + offset).to_string());
        rest = &rest[digits..];
    }
    out.push_str(rest);
}

fn bind<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    values: Vec<Value>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    for v in values {
        q = match v {
            Value::Int(x) => q.bind(x),
            Value::OptInt(x) => q.bind(x),
            Value::Text(x) => q.bind(x),
            Value::OptText(x) => q.bind(x),
            Value::Blob(x) => q.bind(x),
        };
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_renumbered_in_order() {
        let mut s = Script::new();
        s.push(
            "UPDATE a SET x = $2 WHERE id = $1",
            vec![1.into(), 2.into()],
        )
        .push("DELETE FROM b WHERE id = $1 AND y = $10", vec![]);
        let (sql, values) = s.joined();
        assert_eq!(
            sql,
            "UPDATE a SET x = $2 WHERE id = $1;\nDELETE FROM b WHERE id = $3 AND y = $12;\n"
        );
        assert_eq!(values.len(), 2);
    }

    /// On a real SQLite database: one call runs every statement, each with
    /// its own values, in order.
    #[tokio::test]
    async fn a_joined_script_runs_every_statement_on_sqlite() {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut conn = AnyConnection::connect("sqlite::memory:").await.unwrap();
        sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, data BLOB)")
            .execute(&mut conn)
            .await
            .unwrap();
        let mut s = Script::new();
        s.push(
            "INSERT INTO t (id, name, data) VALUES ($1, $2, $3)",
            vec![1.into(), "one".into(), b"\x00\x01".as_slice().into()],
        )
        .push(
            "INSERT INTO t (id, name, data) VALUES ($1, $2, NULL)",
            vec![2.into(), Some("two").into()],
        )
        .push(
            "UPDATE t SET name = $2 WHERE id = $1",
            vec![1.into(), "uno".into()],
        )
        .push("DELETE FROM t WHERE id = $1 AND name = $1", vec![2.into()]);
        assert_eq!(s.run(&mut conn, Backend::Sqlite).await.unwrap(), 3);
        let rows: Vec<(i64, String)> = sqlx::query_as("SELECT id, name FROM t ORDER BY id")
            .fetch_all(&mut conn)
            .await
            .unwrap();
        assert_eq!(rows, vec![(1, "uno".to_string()), (2, "two".to_string())]);
    }
}
