//! `maxConcurrent`: at most N sends in flight through a provider across
//! every node on one PostgreSQL database and every process on one SQLite
//! file (issue 17). A send leases one of the provider's N slots
//! (`provider_slots`) for a bounded time and gives it back when done; the
//! lease's end frees the slot of a process that died mid-send. Mail that
//! finds every slot taken waits in the outbox (the worker postpones it).

use anyhow::Context;

use super::sql::provider_slots::{ACQUIRE, IN_FLIGHT, RELEASE};
use super::sql::providers::ASYNC_COMMIT;
use super::{Db, Store, read_optional};
use crate::clock::Millis;

impl Store {
    /// Leases one of provider `id`'s `max` slots to `holder` until
    /// `until`; false when all `max` are held by live leases.
    pub async fn acquire_provider_slot(
        &self,
        id: &str,
        holder: &str,
        max: i64,
        now: Millis,
        until: Millis,
    ) -> anyhow::Result<bool> {
        // A race on PostgreSQL (two nodes picking the same free slot) makes
        // the loser change nothing although another slot may be free: it
        // tries again, a few times.
        for _ in 0..3 {
            let changed = match &self.db {
                Db::Sqlite(db) => {
                    let (id, holder) = (id.to_owned(), holder.to_owned());
                    db.write(move |tx| Ok(tx.execute(ACQUIRE, &[&id, &holder, &max, &now.0, &until.0])?)).await?
                }
                Db::Postgres(p) => {
                    let mut tx = async_commit(p).await?;
                    let done = sqlx::query(ACQUIRE)
                        .bind(id)
                        .bind(holder)
                        .bind(max)
                        .bind(now.0)
                        .bind(until.0)
                        .execute(&mut *tx)
                        .await
                        .context("lease a provider slot")?;
                    tx.commit().await.context("commit a provider slot")?;
                    usize::try_from(done.rows_affected()).unwrap_or(0)
                }
            };
            if changed > 0 {
                return Ok(true);
            }
            if self.provider_in_flight(id, now).await? >= max {
                return Ok(false);
            }
        }
        Ok(false)
    }

    /// Gives back the slot `holder` leased on provider `id`.
    pub async fn release_provider_slot(&self, id: &str, holder: &str) -> anyhow::Result<()> {
        match &self.db {
            Db::Sqlite(db) => {
                let (id, holder) = (id.to_owned(), holder.to_owned());
                db.write(move |tx| Ok(tx.execute(RELEASE, &[&id, &holder]).map(drop)?)).await
            }
            Db::Postgres(p) => {
                let mut tx = async_commit(p).await?;
                sqlx::query(RELEASE)
                    .bind(id)
                    .bind(holder)
                    .execute(&mut *tx)
                    .await
                    .context("release a provider slot")?;
                tx.commit().await.context("commit a provider slot's release")
            }
        }
    }

    /// How many of provider `id`'s slots are leased now.
    pub async fn provider_in_flight(&self, id: &str, now: Millis) -> anyhow::Result<i64> {
        let row: Option<(i64,)> = read_optional!(self, IN_FLIGHT, id, now.0).context("count provider slots")?;
        Ok(row.map_or(0, |(n,)| n))
    }
}

/// A transaction that does not wait for its WAL flush. Every send through
/// a provider with `maxConcurrent` passes here twice: a commit held up by
/// a slow disk would hold a pool connection meanwhile (and a release that
/// timed out kept its slot until the lease ended). A database crash may
/// forget the last few leases (a send or two over the limit, for a moment)
/// or releases (those slots come back when their leases end).
async fn async_commit(p: &sqlx::PgPool) -> anyhow::Result<sqlx::Transaction<'static, sqlx::Postgres>> {
    let mut tx = p.begin().await.context("begin")?;
    sqlx::query(ASYNC_COMMIT).execute(&mut *tx).await.context("async commit")?;
    Ok(tx)
}
