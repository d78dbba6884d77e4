//! Row helpers of the PostgreSQL store: the `meta` table, pending intents and audit entries.

use super::*;

impl PostgresStore {
    /// A value of the `meta` table.
    /// A time kept in the `meta` table.
    pub(super) async fn meta_time(&self, key: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self.meta(key).await?.as_deref().and_then(codec::parse_ts))
    }

    pub(super) async fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        if self.empty {
            return Ok(None);
        }
        let client = self.client().await?;
        Ok(client
            .query_opt(
                &self.sql("SELECT value FROM {s}.meta WHERE key = $1"),
                &[&key],
            )
            .await
            .map_err(self.db("read meta"))?
            .map(|r| r.get(0)))
    }

    /// Writes a `meta` value (fenced, like every write that follows a pass's progress).
    pub(super) async fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let (tx, _) = self.fenced(&mut client, "write meta").await?;
        tx.execute(
            &self.sql(
                "INSERT INTO {s}.meta (key, value) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            ),
            &[&key, &value],
        )
        .await
        .map_err(self.db("write meta"))?;
        tx.commit().await.map_err(self.db("commit meta"))
    }
}

impl PostgresStore {
    /// Records (or replaces) the write intent for `q_name`.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn insert_pending(
        &self,
        tx: &Transaction<'_>,
        q_name: &str,
        okta_id: &str,
        op: &str,
        run: RunId,
        epoch: i64,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        tx.execute(
            &self.sql(
                "INSERT INTO {s}.pending (q_name, okta_id, op, run_id, epoch, at)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (q_name) DO UPDATE SET okta_id = excluded.okta_id, op = excluded.op,
                   run_id = excluded.run_id, epoch = excluded.epoch, at = excluded.at",
            ),
            &[&q_name, &okta_id, &op, &run, &epoch, &at],
        )
        .await
        .map_err(self.db("record pending write"))?;
        Ok(())
    }

    pub(super) async fn insert_audit(
        &self,
        tx: &Transaction<'_>,
        run: RunId,
        epoch: i64,
        at: DateTime<Utc>,
        a: &AuditRow,
    ) -> Result<(), StoreError> {
        tx.execute(
            &self.sql(
                "INSERT INTO {s}.audit (run_id, epoch, at, q_name, okta_id, op, users_added,
                                        users_removed, added, removed)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            ),
            &[
                &run,
                &epoch,
                &at,
                &a.q_name,
                &a.okta_id,
                &a.op,
                &a.users_added,
                &a.users_removed,
                &a.added,
                &a.removed,
            ],
        )
        .await
        .map_err(self.db("audit"))?;
        Ok(())
    }
}
