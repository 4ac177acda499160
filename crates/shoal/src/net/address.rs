use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::net::NetError;

/// Where a [`Listener`](crate::net::Listener) listens and a
/// [`Client`](crate::net::Client) connects: Python's `AF_INET`/`AF_INET6` (a
/// `(host, port)` pair), `AF_UNIX` (a path) or a Linux abstract socket name.
///
/// Parsing (`"…".parse()`) follows Python's `address_type` for strings: a string that
/// starts with `@` or a NUL byte is an abstract name (the `@` is Python's spelling in
/// `repr`, NUL the kernel's); one with a `/` or without a `:` is a path; anything else is
/// `host:port`, resolved at once (`[::1]:4000` for IPv6). Port `0` asks the kernel for a
/// free port; [`Listener::address`](crate::net::Listener::address) tells which.
///
/// # Examples
/// ```
/// use shoal::net::Address;
///
/// let tcp: Address = "127.0.0.1:4000".parse()?;
/// assert!(matches!(tcp, Address::Tcp(a) if a.port() == 4000));
/// let unix: Address = "/tmp/app.sock".parse()?;
/// assert!(matches!(unix, Address::Unix(_)));
/// let abs: Address = "@shoal-demo".parse()?;
/// assert_eq!(abs.to_string(), "@shoal-demo");
/// # Ok::<(), shoal::net::NetError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// A TCP address (IPv4 or IPv6).
    Tcp(SocketAddr),
    /// A Unix socket path in the file system.
    Unix(PathBuf),
    /// A Linux abstract socket name (without the leading NUL).
    Abstract(Vec<u8>),
}

impl Address {
    /// The first address `host:port` resolves to.
    ///
    /// # Errors
    /// [`NetError::InvalidAddress`] when it does not resolve.
    ///
    /// # Examples
    /// ```
    /// use shoal::net::Address;
    ///
    /// let a = Address::tcp(("127.0.0.1", 4000))?;
    /// assert_eq!(a.to_string(), "127.0.0.1:4000");
    /// assert!(Address::tcp("not an address").is_err());
    /// # Ok::<(), shoal::net::NetError>(())
    /// ```
    pub fn tcp<A: ToSocketAddrs + fmt::Debug>(addr: A) -> Result<Address, NetError> {
        let invalid = |reason: String| NetError::InvalidAddress {
            address: format!("{addr:?}"),
            reason,
        };
        addr.to_socket_addrs()
            .map_err(|e| invalid(e.to_string()))?
            .next()
            .map(Address::Tcp)
            .ok_or_else(|| invalid("it resolves to no address".to_owned()))
    }

    /// A Unix socket path.
    ///
    /// # Examples
    /// ```
    /// use shoal::net::Address;
    ///
    /// let a = Address::unix("/run/app/control.sock");
    /// assert_eq!(a, "/run/app/control.sock".parse()?);
    /// assert_eq!(a.to_string(), "/run/app/control.sock");
    /// # Ok::<(), shoal::net::NetError>(())
    /// ```
    pub fn unix(path: impl AsRef<Path>) -> Address {
        Address::Unix(path.as_ref().to_owned())
    }

    /// A Linux abstract socket name (`name` without the leading NUL).
    ///
    /// # Examples
    /// ```
    /// use shoal::net::Address;
    ///
    /// let a = Address::abstract_name("shoal-demo");
    /// assert_eq!(a, "@shoal-demo".parse()?); // Python's spelling
    /// assert_eq!(a, Address::Abstract(b"shoal-demo".to_vec()));
    /// # Ok::<(), shoal::net::NetError>(())
    /// ```
    pub fn abstract_name(name: impl AsRef<[u8]>) -> Address {
        Address::Abstract(name.as_ref().to_vec())
    }
}

impl FromStr for Address {
    type Err = NetError;

    fn from_str(s: &str) -> Result<Address, NetError> {
        if let Some(name) = s.strip_prefix('@').or_else(|| s.strip_prefix('\0')) {
            return Ok(Address::abstract_name(name));
        }
        if s.is_empty() {
            return Err(NetError::InvalidAddress {
                address: s.to_owned(),
                reason: "it is empty".to_owned(),
            });
        }
        if s.contains('/') || !s.contains(':') {
            return Ok(Address::unix(s));
        }
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Ok(Address::Tcp(a));
        }
        Address::tcp(s)
    }
}

impl From<SocketAddr> for Address {
    fn from(a: SocketAddr) -> Address {
        Address::Tcp(a)
    }
}

impl From<&Path> for Address {
    fn from(p: &Path) -> Address {
        Address::unix(p)
    }
}

impl From<PathBuf> for Address {
    fn from(p: PathBuf) -> Address {
        Address::Unix(p)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp(a) => write!(f, "{a}"),
            Address::Unix(p) => write!(f, "{}", p.display()),
            Address::Abstract(n) => write!(f, "@{}", String::from_utf8_lossy(n)),
        }
    }
}

/// Anything that names an [`Address`]: an `Address`, a string in the forms
/// [`Address`]'s parser reads, a socket address or a path.
///
/// # Examples
/// ```
/// use shoal::net::{Listener, NetError, ToAddress};
///
/// fn serve_on(address: impl ToAddress) -> Result<Listener, NetError> {
///     Listener::bind(address, None)
/// }
///
/// let by_str = serve_on("127.0.0.1:0")?;
/// let by_socket_addr = serve_on(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))?;
/// let by_address = serve_on(by_str.address().clone()); // taken: the port is in use
/// assert!(by_address.is_err());
/// assert_ne!(by_str.address(), by_socket_addr.address());
/// # Ok::<(), NetError>(())
/// ```
pub trait ToAddress {
    /// The address.
    ///
    /// # Errors
    /// [`NetError::InvalidAddress`] when a string does not parse or resolve.
    ///
    /// # Examples
    /// ```
    /// use std::path::Path;
    /// use shoal::net::{Address, ToAddress};
    ///
    /// assert_eq!("@name".to_address()?, Address::abstract_name("name"));
    /// assert_eq!(Path::new("/tmp/app.sock").to_address()?, Address::unix("/tmp/app.sock"));
    /// let tcp = std::net::SocketAddr::from(([127, 0, 0, 1], 80));
    /// assert_eq!(tcp.to_address()?, Address::Tcp(tcp));
    /// assert!("127.0.0.1:http".to_address().is_err());
    /// # Ok::<(), shoal::net::NetError>(())
    /// ```
    fn to_address(&self) -> Result<Address, NetError>;
}

impl ToAddress for Address {
    fn to_address(&self) -> Result<Address, NetError> {
        Ok(self.clone())
    }
}

impl ToAddress for str {
    fn to_address(&self) -> Result<Address, NetError> {
        self.parse()
    }
}

impl ToAddress for String {
    fn to_address(&self) -> Result<Address, NetError> {
        self.parse()
    }
}

impl ToAddress for std::net::SocketAddr {
    fn to_address(&self) -> Result<Address, NetError> {
        Ok(Address::Tcp(*self))
    }
}

impl ToAddress for std::path::Path {
    fn to_address(&self) -> Result<Address, NetError> {
        Ok(Address::unix(self))
    }
}

impl ToAddress for std::path::PathBuf {
    fn to_address(&self) -> Result<Address, NetError> {
        Ok(Address::unix(self))
    }
}

impl<T: ToAddress + ?Sized> ToAddress for &T {
    fn to_address(&self) -> Result<Address, NetError> {
        (**self).to_address()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_family() {
        let a: Address = "[::1]:80".parse().unwrap();
        assert_eq!(a, Address::Tcp("[::1]:80".parse().unwrap()));
        let a: Address = "localhost:80".parse().unwrap();
        assert!(matches!(a, Address::Tcp(s) if s.port() == 80 && s.ip().is_loopback()));
        assert_eq!(
            "\0x".parse::<Address>().unwrap(),
            Address::abstract_name("x")
        );
        assert_eq!("sock".parse::<Address>().unwrap(), Address::unix("sock"));
        assert_eq!("./a:b".parse::<Address>().unwrap(), Address::unix("./a:b"));
        assert!("".parse::<Address>().is_err());
        let err = "host:notaport".parse::<Address>().unwrap_err();
        assert!(err.to_string().starts_with("invalid address"), "{err}");
    }
}
