//! Where each SONiC database lives: parses `database_config.json` (the same file and schema
//! swss-common reads) into a socket path, a DB id and a key separator per logical DB name.
//! Every failure names the file, the JSON field and what was expected, in one line.

use crate::error::{Error, Result};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The compiled-in default of the C++ library (`SonicDBConfig::DEFAULT_SONIC_DB_CONFIG_FILE`).
pub const DEFAULT_DB_CONFIG: &str = "/var/run/redis/sonic-db/database_config.json";

/// The multi-ASIC index of per-namespace database_config.json files.
pub const DEFAULT_DB_GLOBAL: &str = "/var/run/redis/sonic-db/database_global.json";

/// Resolve `namespace` in a `database_global.json` (`{"INCLUDES":[{"include": "<path relative
/// to this file>", "namespace": "asic0"}, …]}`) to that namespace's database_config.json.
pub fn resolve_namespace(global: &Path, namespace: &str) -> Result<PathBuf> {
    let err = |field: &str, expected: &str| Error::config(global, field, expected);
    let text = std::fs::read_to_string(global)
        .map_err(|e| err("(file)", &format!("a readable database_global.json ({e})")))?;
    let root: Value =
        serde_json::from_str(&text).map_err(|e| err("(file)", &format!("valid JSON ({e})")))?;
    let includes = root
        .get("INCLUDES")
        .and_then(Value::as_array)
        .ok_or_else(|| err("INCLUDES", "an array of {include, namespace} objects"))?;
    for (i, inc) in includes.iter().enumerate() {
        if inc.get("namespace").and_then(Value::as_str) == Some(namespace) {
            let rel = inc.get("include").and_then(Value::as_str).ok_or_else(|| {
                err(
                    &format!("INCLUDES[{i}].include"),
                    "a path to a database_config.json",
                )
            })?;
            let base = global.parent().unwrap_or(Path::new("/"));
            return Ok(base.join(rel));
        }
    }
    Err(err(
        "INCLUDES",
        &format!(
            "an entry with \"namespace\": {}",
            Value::String(namespace.to_owned())
        ),
    ))
}

/// One logical database: the unix socket of its instance, its id and its separator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbLocation {
    pub name: String,
    pub socket: PathBuf,
    pub id: i64,
    pub separator: char,
}

impl DbLocation {
    /// `<table><sep><key>`, the way swss-common names a row.
    pub fn key(&self, table: &str, key: &str) -> String {
        format!("{table}{}{key}", self.separator)
    }
}

/// The parsed file: instance name → unix socket path, DB name → location.
#[derive(Debug, Clone)]
pub struct DbConfig {
    file: PathBuf,
    databases: BTreeMap<String, DbLocation>,
}

/// The three databases portsyncd uses.
#[derive(Debug, Clone)]
pub struct SonicDbs {
    pub appl: DbLocation,
    pub config: DbLocation,
    pub state: DbLocation,
}

impl DbConfig {
    pub fn load(file: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(file).map_err(|e| {
            Error::config(
                file,
                "(file)",
                format!("a readable database_config.json ({e})"),
            )
        })?;
        Self::parse(file, &text)
    }

    pub fn parse(file: &Path, text: &str) -> Result<Self> {
        let err = |field: &str, expected: &str| Error::config(file, field, expected);
        let root: Value =
            serde_json::from_str(text).map_err(|e| err("(file)", &format!("valid JSON ({e})")))?;
        let root = root
            .as_object()
            .ok_or_else(|| err("(root)", "a JSON object"))?;
        let instances = root
            .get("INSTANCES")
            .ok_or_else(|| err("INSTANCES", "an object of redis instances"))?
            .as_object()
            .ok_or_else(|| err("INSTANCES", "an object of redis instances"))?;
        let dbs = root
            .get("DATABASES")
            .ok_or_else(|| err("DATABASES", "an object of databases"))?
            .as_object()
            .ok_or_else(|| err("DATABASES", "an object of databases"))?;
        let mut databases = BTreeMap::new();
        for (name, db) in dbs {
            let field = |f: &str| format!("DATABASES.{name}.{f}");
            let db = db
                .as_object()
                .ok_or_else(|| err(&format!("DATABASES.{name}"), "an object"))?;
            let id = db
                .get("id")
                .and_then(Value::as_i64)
                .filter(|id| (0..=i64::from(u16::MAX)).contains(id))
                .ok_or_else(|| err(&field("id"), "a non-negative integer DB id"))?;
            let separator = match db.get("separator").and_then(Value::as_str) {
                Some(":") => ':',
                Some("|") => '|',
                _ => return Err(err(&field("separator"), "\":\" or \"|\"")),
            };
            let inst_name = db
                .get("instance")
                .and_then(Value::as_str)
                .ok_or_else(|| err(&field("instance"), "the name of an entry in INSTANCES"))?;
            let inst = instances
                .get(inst_name)
                .and_then(Value::as_object)
                .ok_or_else(|| {
                    err(
                        &field("instance"),
                        // Quoted as JSON: a name holding a newline must not split the line.
                        &format!(
                            "the name of an entry in INSTANCES (no instance {})",
                            Value::String(inst_name.to_owned())
                        ),
                    )
                })?;
            // Like swss-common, the socket is only required when a DB of this instance is used;
            // keep a marker and check in `get`.
            let socket = inst
                .get("unix_socket_path")
                .map(|v| {
                    v.as_str().map(PathBuf::from).ok_or_else(|| {
                        err(
                            &format!("INSTANCES.{inst_name}.unix_socket_path"),
                            "a string path",
                        )
                    })
                })
                .transpose()?
                .unwrap_or_default();
            databases.insert(
                name.clone(),
                DbLocation {
                    name: name.clone(),
                    socket,
                    id,
                    separator,
                },
            );
        }
        Ok(DbConfig {
            file: file.to_path_buf(),
            databases,
        })
    }

    /// The location of one named DB; the DB and its instance's unix socket must be present.
    pub fn get(&self, name: &str) -> Result<DbLocation> {
        let db = self.databases.get(name).ok_or_else(|| {
            Error::config(
                &self.file,
                format!("DATABASES.{name}"),
                "an entry for this database",
            )
        })?;
        if db.socket.as_os_str().is_empty() {
            return Err(Error::config(
                &self.file,
                format!("DATABASES.{name}.instance"),
                "an instance with a unix_socket_path (portsyncd connects over the unix socket)",
            ));
        }
        Ok(db.clone())
    }

    /// A socket path that exists but is not a socket is a configuration error (one that does
    /// not exist yet is Redis not being up, which the daemon waits for).
    pub fn check_socket(&self, db: &DbLocation) -> Result<()> {
        use std::os::unix::fs::FileTypeExt;
        match std::fs::metadata(&db.socket) {
            Ok(m) if !m.file_type().is_socket() => Err(Error::config(
                &self.file,
                format!("DATABASES.{}.instance", db.name),
                format!(
                    "an instance whose unix_socket_path is a unix socket ({} is not one)",
                    db.socket.display()
                ),
            )),
            _ => Ok(()),
        }
    }

    pub fn sonic_dbs(&self) -> Result<SonicDbs> {
        Ok(SonicDbs {
            appl: self.get("APPL_DB")?,
            config: self.get("CONFIG_DB")?,
            state: self.get("STATE_DB")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"INSTANCES":{"redis":{"hostname":"127.0.0.1","port":6379,
        "unix_socket_path":"/var/run/redis/redis.sock"}},
        "DATABASES":{"APPL_DB":{"id":0,"separator":":","instance":"redis"},
        "CONFIG_DB":{"id":4,"separator":"|","instance":"redis"},
        "STATE_DB":{"id":6,"separator":"|","instance":"redis"}},"VERSION":"1.0"}"#;

    fn parse(text: &str) -> Result<SonicDbs> {
        DbConfig::parse(Path::new("/x/database_config.json"), text)?.sonic_dbs()
    }

    #[test]
    fn standard_layout() {
        let dbs = parse(GOOD).unwrap();
        assert_eq!(dbs.appl.id, 0);
        assert_eq!(
            dbs.appl.key("PORT_TABLE", "Ethernet0"),
            "PORT_TABLE:Ethernet0"
        );
        assert_eq!(
            dbs.state.key("PORT_TABLE", "Ethernet0"),
            "PORT_TABLE|Ethernet0"
        );
        assert_eq!(
            dbs.config.socket,
            PathBuf::from("/var/run/redis/redis.sock")
        );
    }

    #[test]
    fn namespace_resolves_through_database_global() {
        let dir = std::env::temp_dir().join(format!("pst-global-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let g = dir.join("database_global.json");
        std::fs::write(
            &g,
            r#"{"INCLUDES":[{"include":"database_config.json"},
            {"include":"../redis1/database_config.json","namespace":"asic1"}],"VERSION":"1.0"}"#,
        )
        .unwrap();
        assert_eq!(
            resolve_namespace(&g, "asic1").unwrap(),
            dir.join("../redis1/database_config.json")
        );
        let e = resolve_namespace(&g, "asic7").unwrap_err().to_string();
        assert!(
            e.contains("database_global.json: INCLUDES: an entry with \"namespace\": \"asic7\""),
            "{e}"
        );
        std::fs::write(&g, "{}").unwrap();
        assert!(resolve_namespace(&g, "asic1")
            .unwrap_err()
            .to_string()
            .contains("INCLUDES"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// (input mutation, field the error must name)
    #[test]
    fn bad_inputs_name_the_field() {
        let cases: &[(&str, &str)] = &[
            ("not json", "(file)"),
            ("[]", "(root)"),
            (r#"{"DATABASES":{}}"#, "INSTANCES"),
            (r#"{"INSTANCES":{}}"#, "DATABASES"),
            (
                &GOOD.replace(r#""id":6"#, r#""id":"6""#),
                "DATABASES.STATE_DB.id",
            ),
            (
                &GOOD.replace(r#""separator":":""#, r#""separator":"/""#),
                "DATABASES.APPL_DB.separator",
            ),
            (
                &GOOD.replace(r#""instance":"redis"}}"#, r#""instance":"nope"}}"#),
                "DATABASES.STATE_DB.instance",
            ),
            (
                &GOOD.replace(r#""STATE_DB""#, r#""STATE_DBX""#),
                "DATABASES.STATE_DB",
            ),
            (
                &GOOD.replace(
                    r#""unix_socket_path":"/var/run/redis/redis.sock""#,
                    r#""unix_socket_path":1"#,
                ),
                "unix_socket_path",
            ),
            (
                &GOOD.replace(
                    r#""unix_socket_path":"/var/run/redis/redis.sock""#,
                    r#""other":"x""#,
                ),
                "DATABASES.APPL_DB.instance",
            ),
        ];
        for (text, field) in cases {
            let msg = match parse(text) {
                Ok(_) => panic!("accepted a bad file (expected an error naming {field}): {text}"),
                Err(e) => e.to_string(),
            };
            assert!(msg.starts_with("/x/database_config.json: "), "{msg}");
            assert!(msg.contains(field), "expected {field} in {msg}");
        }
    }
}
