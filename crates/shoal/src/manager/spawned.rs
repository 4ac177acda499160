//! A manager server in a child process of its own, as Python's `BaseManager.start()`
//! runs one.

use std::time::Duration;

use crate::manager::{Builtin, Client, ManagerError, Server};
use crate::net::{Address, ToAddress};
use crate::{Process, Queue};

/// How long the parent waits for the child to report its address.
const START_LIMIT: Duration = Duration::from_secs(30);

/// What the child is told: where to listen, the key, the shared objects to register
/// (type id to serve under, built-in type id), and where to report.
type Args = (
    String,
    Vec<u8>,
    Vec<(String, String)>,
    Queue<Result<String, String>>,
);

fn serve_in_child((address, authkey, shared, report): Args) -> i32 {
    let server = match Server::bind(address.as_str(), &authkey) {
        Ok(server) => server,
        Err(e) => {
            let _ = report.put(Err(e.to_string()));
            return 1;
        }
    };
    for (typeid, builtin) in &shared {
        // The parent checked every built-in type id before starting the child.
        if let Some(kind) = Builtin::from_typeid(builtin) {
            server.register_shared(typeid, kind);
        }
    }
    if report.put(Ok(server.address().to_string())).is_err() {
        return 1;
    }
    match server.serve_forever() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("shoal manager server at {address}: {e}");
            1
        }
    }
}
crate::entry!(serve_in_child);

/// A manager server running in a child process ([`Server::spawn`]). Dropping it shuts
/// the server down (and kills the child if it does not exit).
#[derive(Debug)]
pub struct ServerProcess {
    process: Option<Process>,
    address: Address,
    authkey: Vec<u8>,
}

impl Server {
    /// Starts a server in a child process listening on `address` (port 0: one the
    /// kernel picks), serving the built-in types and, under each `(typeid, builtin)`
    /// of `shared`, one object of that built-in type that every client reaches (the
    /// `register('get_queue', callable=lambda: queue)` pattern of Python's managers).
    ///
    /// # Errors
    /// [`ManagerError::Protocol`] for a built-in type id that does not exist;
    /// [`ManagerError::Server`] when the child could not bind the address or start.
    ///
    /// # Examples
    /// ```
    /// use shoal::manager::{Builtin, Client, Server};
    ///
    /// let server = Server::spawn("127.0.0.1:0", b"key", &[("get_jobs", Builtin::Queue)])?;
    /// let client = Client::connect(server.address(), b"key")?;
    /// let jobs = client.create("get_jobs", vec![])?;
    /// jobs.call("put", vec![shoal::manager::Value::I64(7)])?;
    /// server.shutdown()?;
    /// # Ok::<(), shoal::manager::ManagerError>(())
    /// ```
    pub fn spawn(
        address: impl ToAddress,
        authkey: &[u8],
        shared: &[(&str, Builtin)],
    ) -> Result<ServerProcess, ManagerError> {
        let address = address.to_address()?;
        let failed = |what: String| ManagerError::Server {
            text: format!("the manager server process for {address} {what}"),
        };
        let report: Queue<Result<String, String>> =
            Queue::new().map_err(|e| failed(format!("could not be given a queue: {e}")))?;
        let shared = shared
            .iter()
            .map(|(typeid, kind)| ((*typeid).to_owned(), kind.typeid().to_owned()))
            .collect();
        let args = (
            address.to_string(),
            authkey.to_vec(),
            shared,
            report.clone(),
        );
        let process = Process::new(serve_in_child, args)
            .name("shoal-manager")
            .start()
            .map_err(|e| failed(format!("could not start: {e}")))?;
        let error = match report.get_timeout(START_LIMIT) {
            Ok(Ok(bound)) => match bound.as_str().to_address() {
                Ok(address) => {
                    return Ok(ServerProcess {
                        process: Some(process),
                        address,
                        authkey: authkey.to_vec(),
                    });
                }
                Err(e) => ManagerError::from(e),
            },
            Ok(Err(e)) => failed(format!("could not serve: {e}")),
            Err(e) => failed(format!(
                "did not report its address within {START_LIMIT:?}: {e}"
            )),
        };
        // No server to ask to stop (or none that answers): the child goes at once.
        let _ = process.kill();
        let _ = process.join();
        Err(error)
    }
}

impl ServerProcess {
    /// The address clients connect to.
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// The child's process id (`None` only while the handle is being dropped).
    ///
    /// # Examples
    /// ```
    /// use shoal::manager::Server;
    ///
    /// let server = Server::spawn("127.0.0.1:0", b"key", &[])?;
    /// let pid = server.pid().expect("the server runs");
    /// assert_ne!(pid, std::process::id());
    /// server.shutdown()?;
    /// # Ok::<(), shoal::manager::ManagerError>(())
    /// ```
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Process::pid)
    }

    /// Asks the server to stop and waits for its process to exit (killing it after a
    /// few seconds if it does not).
    ///
    /// # Errors
    /// [`ManagerError::Server`] when the process could not be waited for.
    pub fn shutdown(mut self) -> Result<(), ManagerError> {
        self.stop()
    }

    fn stop(&mut self) -> Result<(), ManagerError> {
        let Some(process) = self.process.take() else {
            return Ok(());
        };
        if let Ok(client) = Client::connect(&self.address, &self.authkey) {
            let _ = client.shutdown();
        }
        let wait = |p: &Process| p.join_timeout(Duration::from_secs(5));
        let gone = |e: crate::process::ProcessError| ManagerError::Server {
            text: format!("the manager server process at {}: {e}", self.address),
        };
        if wait(&process).map_err(gone)?.is_none() {
            process.kill().map_err(gone)?;
            process.join().map_err(gone)?;
        }
        Ok(())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
