//! The control socket: a unix stream socket, mode 0600 in a 0700 directory
//! (root only). Each connection gets one [`Status`] as JSON and a newline,
//! then the daemon closes it (see [`crate::contract::status`]).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::debug;

use crate::contract::status::Status;
use crate::ipvs::IpvsClient;

/// Where the listeners ask the main loop for its status: each request carries
/// the channel the answer goes back on. The daemon forwards these into its own
/// event channel, so the listeners need nothing of the daemon's types.
pub(crate) type StatusRequests = mpsc::Sender<oneshot::Sender<Status>>;

/// Bind the socket (replacing a stale one) and serve it in a task.
pub(crate) fn serve(
    path: &Path,
    tx: StatusRequests,
    ipvs: Option<IpvsClient>,
) -> std::io::Result<JoinHandle<()>> {
    if let Some(dir) = path.parent()
        && !dir.exists()
    {
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(tokio::spawn(async move {
        loop {
            let Ok((conn, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let tx = tx.clone();
            let ipvs = ipvs.clone();
            tokio::spawn(async move {
                if let Err(e) = answer(conn, tx, ipvs).await {
                    debug!("control socket: {e}");
                }
            });
        }
    }))
}

/// The daemon's status with the kernel's IPVS counters attached (read now,
/// at most 2 s); `None` when the main loop is gone.
pub(crate) async fn snapshot(tx: &StatusRequests, ipvs: Option<IpvsClient>) -> Option<Status> {
    let (rtx, rrx) = oneshot::channel();
    tx.send(rtx).await.ok()?;
    let mut status = rrx.await.ok()?;
    if let Some(mut c) = ipvs {
        match tokio::time::timeout(Duration::from_secs(2), c.services()).await {
            Ok(Ok(table)) => status.attach_kernel(&table),
            Ok(Err(e)) => status.ipvs.error = Some(e.to_string()),
            Err(_) => status.ipvs.error = Some("reading the IPVS table timed out".into()),
        }
        if let Ok(Ok(t)) = tokio::time::timeout(Duration::from_secs(2), c.timeouts()).await {
            status.ipvs.timeouts = Some(crate::contract::status::TimeoutsStatus {
                tcp: t.tcp,
                tcpfin: t.tcp_fin,
                udp: t.udp,
            });
        }
    }
    Some(status)
}

async fn answer(
    mut conn: UnixStream,
    tx: StatusRequests,
    ipvs: Option<IpvsClient>,
) -> std::io::Result<()> {
    let Some(status) = snapshot(&tx, ipvs).await else {
        return Ok(());
    };
    let mut body = serde_json::to_vec(&status).map_err(std::io::Error::other)?;
    body.push(b'\n');
    conn.write_all(&body).await?;
    conn.shutdown().await
}

/// The client side: read one status from `path`.
pub async fn query(path: &Path) -> anyhow::Result<Status> {
    use anyhow::Context;
    let mut s = UnixStream::connect(path).await.with_context(|| {
        format!(
            "connecting to {} (is the director daemon running? root only)",
            path.display()
        )
    })?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .context("the daemon did not answer within 10 s")??;
    let st: Status = serde_json::from_slice(&buf).context("parsing the daemon's status")?;
    Ok(st)
}
