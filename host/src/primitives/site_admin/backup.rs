//! Backups of the site database as a tar archive (`manifest.json` +
//! `tessera.db`), and their validation before a restore.

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::AdminError;
use crate::db::Database;

const FORMAT: &str = "tessera-backup-1";
const DB_ENTRY: &str = "tessera.db";
const MANIFEST_ENTRY: &str = "manifest.json";
/// Tables every site database has; a file without them is not a site backup.
const REQUIRED_TABLES: &[&str] = &["auth_accounts", "auth_tokens", "auth_audit"];
/// The largest database a restore reads into memory.
const MAX_DB_BYTES: u64 = 4 << 30;

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    format: String,
    kernel_version: String,
    created_ms: u64,
    database: String,
    size: u64,
    sha256: String,
}

/// Write a consistent backup of `db` to `dest` (via a temp file beside it).
pub fn write(db: &Database, dest: &Path) -> Result<(), AdminError> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    let work = tempfile::tempdir_in(dir).map_err(failed("temp dir"))?;
    let copy = work.path().join(DB_ENTRY);
    db.backup_to(&copy).map_err(failed("online backup"))?;
    let bytes = std::fs::read(&copy).map_err(failed("read backup"))?;
    let manifest = Manifest {
        format: FORMAT.into(),
        kernel_version: env!("CARGO_PKG_VERSION").into(),
        created_ms: super::now_ms(),
        database: DB_ENTRY.into(),
        size: bytes.len() as u64,
        sha256: hex::encode(Sha256::digest(&bytes)),
    };
    let manifest = serde_json::to_vec_pretty(&manifest).map_err(failed("manifest"))?;
    let mut tar = tar::Builder::new(Vec::new());
    append(&mut tar, MANIFEST_ENTRY, &manifest)?;
    append(&mut tar, DB_ENTRY, &bytes)?;
    let archive = tar.into_inner().map_err(failed("tar"))?;
    let partial = work.path().join("backup.tar.partial");
    std::fs::write(&partial, &archive).map_err(failed("write backup"))?;
    std::fs::rename(&partial, dest).map_err(failed("move backup into place"))?;
    Ok(())
}

pub fn append(tar: &mut tar::Builder<Vec<u8>>, name: &str, bytes: &[u8]) -> Result<(), AdminError> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o600);
    header.set_mtime(super::now_ms() / 1000);
    header.set_cksum();
    tar.append_data(&mut header, name, bytes)
        .map_err(failed("tar"))
}

/// Check an archive and return the path of its database, extracted into `work`.
pub fn validate(archive: &Path, work: &Path) -> Result<std::path::PathBuf, AdminError> {
    let file = std::fs::File::open(archive)
        .map_err(|e| AdminError::NotFound(format!("backup archive: {e}")))?;
    let mut manifest: Option<Manifest> = None;
    let mut database: Option<Vec<u8>> = None;
    let mut tar = tar::Archive::new(file);
    let entries = tar.entries().map_err(bad("not a tar archive"))?;
    for entry in entries {
        let entry = entry.map_err(bad("damaged tar archive"))?;
        let name = entry
            .path()
            .map_err(bad("bad entry name"))?
            .to_string_lossy()
            .into_owned();
        let size = entry.header().size().map_err(bad("bad entry size"))?;
        match name.as_str() {
            MANIFEST_ENTRY if size < 64 * 1024 => {
                let mut text = Vec::new();
                entry
                    .take(size)
                    .read_to_end(&mut text)
                    .map_err(bad("unreadable manifest"))?;
                manifest =
                    Some(serde_json::from_slice(&text).map_err(bad("manifest is not valid"))?);
            }
            DB_ENTRY if size <= MAX_DB_BYTES => {
                let mut bytes = Vec::with_capacity(size as usize);
                entry
                    .take(size)
                    .read_to_end(&mut bytes)
                    .map_err(bad("unreadable database"))?;
                database = Some(bytes);
            }
            _ => {}
        }
    }
    let manifest = manifest.ok_or_else(|| invalid("the archive has no manifest.json"))?;
    let database = database.ok_or_else(|| invalid("the archive has no tessera.db"))?;
    if manifest.format != FORMAT {
        return Err(invalid(&format!(
            "unknown backup format {:?}",
            manifest.format
        )));
    }
    let digest = hex::encode(Sha256::digest(&database));
    if manifest.size != database.len() as u64 || !digest.eq_ignore_ascii_case(&manifest.sha256) {
        return Err(invalid(
            "the database does not match the manifest's size and sha256",
        ));
    }
    let path = work.join(DB_ENTRY);
    std::fs::write(&path, &database).map_err(failed("extract database"))?;
    check_database(&path)?;
    Ok(path)
}

/// The file must be a sound SQLite database holding the site's tables.
fn check_database(path: &Path) -> Result<(), AdminError> {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(bad("not a database"))?;
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .map_err(bad("not a database"))?;
    if check != "ok" {
        return Err(invalid(&format!("database integrity check: {check}")));
    }
    for table in REQUIRED_TABLES {
        let found: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [table],
                |row| row.get(0),
            )
            .map_err(bad("not a database"))?;
        if found == 0 {
            return Err(invalid(&format!("not a site database (no table {table})")));
        }
    }
    Ok(())
}

fn invalid(message: &str) -> AdminError {
    AdminError::Invalid(message.to_owned())
}

fn bad<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> AdminError {
    move |e| AdminError::Invalid(format!("{what}: {e}"))
}

fn failed<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> AdminError {
    move |e| {
        tracing::error!(error = %e, "{what} failed");
        AdminError::Failed(format!("{what} failed"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site_db() -> Database {
        let db = Database::open_in_memory_for_tests().unwrap();
        db.with_conn(|c| {
            c.execute_batch(
                "CREATE TABLE auth_accounts (x); CREATE TABLE auth_tokens (x); CREATE TABLE auth_audit (x);
                 CREATE TABLE notes (v TEXT); INSERT INTO notes VALUES ('first');",
            )
            .map_err(crate::db::DbError::from)
        })
        .unwrap();
        db
    }

    fn notes(db: &Database) -> Vec<String> {
        db.with_conn(|c| {
            let mut s = c
                .prepare("SELECT v FROM notes ORDER BY rowid")
                .map_err(crate::db::DbError::from)?;
            let rows = s
                .query_map([], |r| r.get(0))
                .map_err(crate::db::DbError::from)?;
            Ok::<_, crate::db::DbError>(rows.map(|r| r.unwrap()).collect())
        })
        .unwrap()
    }

    #[test]
    fn a_backup_restores_what_was_there_when_it_was_made() {
        let db = site_db();
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("backup.tar");
        write(&db, &archive).unwrap();
        db.with_conn(|c| {
            c.execute_batch("INSERT INTO notes VALUES ('second')")
                .map_err(crate::db::DbError::from)
        })
        .unwrap();
        assert_eq!(notes(&db), ["first", "second"]);
        let extracted = validate(&archive, dir.path()).unwrap();
        db.restore_from(&extracted).unwrap();
        assert_eq!(notes(&db), ["first"]);
    }

    #[test]
    fn damaged_or_foreign_archives_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.tar");
        std::fs::write(&path, b"not a tar at all, clearly").unwrap();
        assert!(matches!(
            validate(&path, dir.path()),
            Err(AdminError::Invalid(_))
        ));
        // A tar whose database does not match its manifest.
        let db = site_db();
        write(&db, &path).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let at = bytes.len() - 2048;
        bytes[at] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            validate(&path, dir.path()),
            Err(AdminError::Invalid(_))
        ));
        // A sound SQLite file that is not a site database.
        let other = Database::open_in_memory_for_tests().unwrap();
        write(&other, &path).unwrap();
        let e = validate(&path, dir.path()).unwrap_err();
        assert!(
            matches!(&e, AdminError::Invalid(m) if m.contains("site database")),
            "{e:?}"
        );
    }
}
