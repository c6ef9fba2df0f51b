//! A proxy's URL, checked once where it enters (REST) like a [`crate::Phone`]. It may carry a
//! username and password, so it is sealed at rest (`SessionCipher::seal_proxy_url`) and its
//! `Debug` and `Display` show the endpoint only: a log line or a panic message carrying one never
//! carries its credentials.

use zeroize::Zeroizing;

/// A `socks5://[user[:password]@]host:port` URL (the one scheme grammers' `proxy` feature dials).
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    full: Zeroizing<String>,
    /// `host:port`, what logs and errors may show.
    endpoint: String,
    has_credentials: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyUrlError {
    #[error("not a URL")]
    NotUrl,
    #[error("the scheme must be socks5 (got {0:?})")]
    Scheme(String),
    #[error("the URL names no host")]
    NoHost,
    #[error("the URL names no port")]
    NoPort,
    #[error("the URL may hold only a scheme, credentials, a host and a port")]
    Extra,
    /// grammers 0.11 hands the proxy the user name and password as the URL spells them, so an
    /// escaped character (`%40` for `@`, or one the URL escapes itself, like a space) would reach
    /// the proxy escaped and fail its authentication on every connection.
    #[error(
        "the user name and password may not hold characters a URL escapes (%, @, :, /, space, …): \
         grammers would send them escaped and the proxy would refuse them"
    )]
    EscapedCredentials,
}

impl ProxyUrl {
    /// The whole URL, credentials included: for the connection only.
    pub fn expose(&self) -> &str {
        &self.full
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn has_credentials(&self) -> bool {
        self.has_credentials
    }

    /// The username and password, for a SOCKS5 handshake of our own (a proxy check).
    pub fn credentials(&self) -> Option<(String, Zeroizing<String>)> {
        if !self.has_credentials {
            return None;
        }
        let url = url::Url::parse(&self.full).ok()?;
        let user = url.username().to_owned();
        let password = Zeroizing::new(url.password().unwrap_or("").to_owned());
        Some((user, password))
    }
}

impl std::str::FromStr for ProxyUrl {
    type Err = ProxyUrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let url = url::Url::parse(s.trim()).map_err(|_| ProxyUrlError::NotUrl)?;
        if url.scheme() != "socks5" {
            return Err(ProxyUrlError::Scheme(url.scheme().to_owned()));
        }
        let host = url.host_str().ok_or(ProxyUrlError::NoHost)?;
        if host.is_empty() {
            return Err(ProxyUrlError::NoHost);
        }
        let port = url.port().ok_or(ProxyUrlError::NoPort)?;
        if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
            return Err(ProxyUrlError::Extra);
        }
        if url.username().contains('%') || url.password().is_some_and(|p| p.contains('%')) {
            return Err(ProxyUrlError::EscapedCredentials);
        }
        let has_credentials = !url.username().is_empty() || url.password().is_some();
        let endpoint = format!("{host}:{port}");
        // grammers parses the URL again; a normalised one (no trailing slash) reads the same.
        let mut full = String::from("socks5://");
        if has_credentials {
            full.push_str(url.username());
            if let Some(password) = url.password() {
                full.push(':');
                full.push_str(password);
            }
            full.push('@');
        }
        full.push_str(&endpoint);
        Ok(Self {
            full: Zeroizing::new(full),
            endpoint,
            has_credentials,
        })
    }
}

impl std::fmt::Display for ProxyUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.has_credentials {
            write!(f, "socks5://***@{}", self.endpoint)
        } else {
            write!(f, "socks5://{}", self.endpoint)
        }
    }
}

impl std::fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProxyUrl({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_show() {
        let url: ProxyUrl = "socks5://alice:s3cret@127.0.0.1:1080/".parse().unwrap();
        assert_eq!(url.expose(), "socks5://alice:s3cret@127.0.0.1:1080");
        assert_eq!(url.to_string(), "socks5://***@127.0.0.1:1080");
        assert!(!format!("{url:?}").contains("s3cret"));
        assert!(!format!("{url:?}").contains("alice"));
    }

    #[test]
    fn refuses_what_grammers_cannot_dial() {
        for (bad, why) in [
            (
                "http://127.0.0.1:8080",
                ProxyUrlError::Scheme("http".into()),
            ),
            ("socks5://127.0.0.1", ProxyUrlError::NoPort),
            ("socks5://127.0.0.1:1080/path", ProxyUrlError::Extra),
            ("127.0.0.1:1080", ProxyUrlError::NotUrl),
            ("nonsense", ProxyUrlError::NotUrl),
            (
                "socks5://alice:p%40ss@127.0.0.1:1080",
                ProxyUrlError::EscapedCredentials,
            ),
            (
                "socks5://al ice:pass@127.0.0.1:1080",
                ProxyUrlError::EscapedCredentials,
            ),
        ] {
            assert_eq!(bad.parse::<ProxyUrl>().unwrap_err(), why, "{bad}");
        }
        let plain: ProxyUrl = "socks5://proxy.example:1080".parse().unwrap();
        assert_eq!(plain.to_string(), "socks5://proxy.example:1080");
        assert!(!plain.has_credentials());
    }
}
