//! The schema is the code's, not the file's. Whoever can write the SQLite file can also
//! redefine what its schema says: a view that hides an actor's entries, a trigger that
//! rewrites rows as they are inserted, a dropped append-only trigger. Readers therefore
//! query the base tables with joins written in the code (never a view the file defines),
//! and the file's `sqlite_master` (tables, views, triggers, indexes) is compared with the
//! schema signalbox's own migrations create: any difference is reported as tampering,
//! naming the object.
use std::borrow::Cow;
use std::collections::BTreeMap;

use sqlx::SqlitePool;
use sqlx::migrate::Migrator;
use sqlx::sqlite::SqlitePoolOptions;

use super::{AuditError, AuditStore};

/// The migrations embedded from `migrations/`.
pub(super) static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Each object of a schema by name: its type, table and SQL text as SQLite keeps them.
pub(super) type Schema = BTreeMap<String, (String, String, Option<String>)>;

/// What `sqlite_master` lists, but SQLite's statistics tables (`ANALYZE`), which say
/// nothing about what queries return.
const MASTER_SQL: &str =
    "SELECT name, type, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite\\_stat%' ESCAPE '\\'";

async fn schema_of(pool: &SqlitePool) -> Result<Schema, AuditError> {
    let rows: Vec<(String, String, String, Option<String>)> = sqlx::query_as(MASTER_SQL).fetch_all(pool).await?;
    Ok(rows.into_iter().map(|(name, kind, table, sql)| (name, (kind, table, sql))).collect())
}

/// The migrations the file says were applied (none when it has no migrations table).
async fn applied_versions(pool: &SqlitePool) -> Result<Vec<i64>, AuditError> {
    let has_table: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations')",
    )
    .fetch_one(pool)
    .await?;
    if !has_table {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success = 1 ORDER BY version")
        .fetch_all(pool)
        .await?)
}

/// The schema signalbox's migrations create, those of `versions` only (a log written by an
/// older signalbox, verified read-only by a newer one, has fewer): built in memory.
async fn expected_schema(versions: &[i64]) -> Result<Schema, AuditError> {
    let migrations: Vec<_> = MIGRATOR.iter().filter(|m| versions.contains(&m.version)).cloned().collect();
    let migrator = Migrator { migrations: Cow::Owned(migrations), ..Migrator::DEFAULT };
    let pool = SqlitePoolOptions::new().max_connections(1).connect("sqlite::memory:").await?;
    migrator.run(&pool).await.map_err(sqlx::Error::from)?;
    let schema = schema_of(&pool).await;
    pool.close().await;
    schema
}

/// Every difference between `found` and `expected`, in words.
fn differences(found: &Schema, expected: &Schema) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, (kind, table, sql)) in found {
        match expected.get(name) {
            None => problems.push(format!(
                "the schema was changed: {kind} {name} (on {table}) is not one signalbox's migrations create: {}",
                excerpt(sql)
            )),
            Some((expected_kind, expected_table, expected_sql))
                if (expected_kind, expected_table, expected_sql) != (kind, table, sql) =>
            {
                problems.push(format!(
                    "the schema was changed: {kind} {name} is not defined as signalbox's migrations define it: {}",
                    excerpt(sql)
                ))
            }
            Some(_) => {}
        }
    }
    for (name, (kind, _, _)) in expected {
        if !found.contains_key(name) {
            problems.push(format!(
                "the schema was changed: {kind} {name}, which signalbox's migrations create, was dropped"
            ));
        }
    }
    problems
}

/// The start of an object's SQL, on one line.
fn excerpt(sql: &Option<String>) -> String {
    let Some(sql) = sql else { return "(no SQL)".into() };
    let line = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

impl AuditStore {
    /// Compares the file's schema with the one signalbox's migrations create (for the
    /// migrations the file records): each object added, dropped or redefined, in words.
    pub async fn schema_problems(&self) -> Result<Vec<String>, AuditError> {
        let versions = applied_versions(&self.pool).await?;
        let unknown: Vec<String> = versions
            .iter()
            .filter(|version| !MIGRATOR.iter().any(|m| m.version == **version))
            .map(i64::to_string)
            .collect();
        let mut problems = Vec::new();
        if !unknown.is_empty() {
            problems.push(format!(
                "the schema was changed: the database records migrations this signalbox does not have: {}",
                unknown.join(", ")
            ));
        }
        let expected = self.expected.get_or_try_init(|| expected_schema(&versions)).await?;
        problems.extend(differences(&schema_of(&self.pool).await?, expected));
        Ok(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(kind: &str, sql: &str) -> (String, String, Option<String>) {
        (kind.into(), "t".into(), Some(sql.into()))
    }

    #[test]
    fn added_dropped_and_redefined_objects_are_each_named() {
        let expected: Schema = [
            ("t".to_owned(), object("table", "CREATE TABLE t (a)")),
            ("v".to_owned(), object("view", "CREATE VIEW v AS SELECT a FROM t")),
            ("keep".to_owned(), object("trigger", "CREATE TRIGGER keep ...")),
        ]
        .into();
        assert_eq!(differences(&expected, &expected), Vec::<String>::new());
        let mut found = expected.clone();
        found.insert("v".into(), object("view", "CREATE VIEW v AS SELECT a FROM t WHERE a <> 'mallory'"));
        found.insert("sneaky".into(), object("trigger", "CREATE TRIGGER sneaky ..."));
        found.remove("keep");
        let problems = differences(&found, &expected);
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("trigger sneaky (on t) is not one")), "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("view v is not defined as") && p.contains("mallory")));
        assert!(problems.iter().any(|p| p.contains("trigger keep, which signalbox's migrations create, was dropped")));
    }
}
