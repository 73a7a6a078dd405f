//! `portsyncd --check-config`: everything the daemon needs before it can start, checked the
//! way the unit will run it. The settings file and `database_config.json` parse; each Redis
//! socket exists, is a socket, and admits this user *without* CAP_DAC_OVERRIDE (the unit
//! drops it, so a root shell's "OK" would otherwise mean nothing); Redis answers PING.
//! Exit 0 with one line, or the daemon's own exit code and reason (78 configuration, 69 Redis).

use crate::config::Settings;
use crate::dbconfig::DbConfig;
use crate::error::{Error, Result};
use crate::sockaccess::{self, Access};
use std::time::Duration;

pub fn run(settings: &Settings) -> Result<u8> {
    let cfg = DbConfig::load(&settings.db_config)?;
    let dbs = cfg.sonic_dbs()?;
    // As the unit runs: this user and its groups, file modes enforced.
    let mut creds = sockaccess::current();
    creds.dac_override = false;
    for db in [&dbs.appl, &dbs.config, &dbs.state] {
        cfg.check_socket(db)?;
        let field = format!("DATABASES.{}.instance", db.name);
        let Some(owner) = sockaccess::owner_of(&db.socket) else {
            return Err(Error::config(
                &settings.db_config,
                field,
                format!(
                    "a Redis listening on {} (it does not exist: is Redis running?)",
                    db.socket.display()
                ),
            ));
        };
        if sockaccess::decide(owner, &creds) != Access::Granted {
            let why = sockaccess::explain(&db.socket, owner, &creds, &sockaccess::Names::load());
            return Err(Error::config(&settings.db_config, field, why));
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the runtime", e))?;
    let timeout = settings.redis_timeout.max(Duration::from_millis(100));
    rt.block_on(async {
        for db in [&dbs.appl, &dbs.config, &dbs.state] {
            let mut con = crate::store::connect(db, timeout)
                .await
                .map_err(|e| Error::redis(format!("{} at {}", db.name, db.socket.display()), e))?;
            let _: String = redis::cmd("PING")
                .query_async(&mut con)
                .await
                .map_err(|e| Error::redis(format!("{} PING", db.name), e))?;
        }
        Ok::<(), Error>(())
    })?;
    println!(
        "configuration OK: APPL_DB {} ({}), CONFIG_DB {}, STATE_DB {} via {} (answers PING; \
         writable by uid {} without CAP_DAC_OVERRIDE)",
        dbs.appl.id,
        dbs.appl.separator,
        dbs.config.id,
        dbs.state.id,
        dbs.appl.socket.display(),
        creds.uid,
    );
    Ok(0)
}
