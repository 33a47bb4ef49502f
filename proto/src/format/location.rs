//! Opening a backup location: the one way hub and agent reach a bucket.

use object_store::ObjectStore;
use object_store::prefix::PrefixStore;
use std::sync::Arc;

use crate::model::Location;

/// A location that cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL does not parse.
    #[error("location {location}: invalid URL {url:?}")]
    Url {
        /// Location name.
        location: String,
        /// The URL as given.
        url: String,
        /// The cause.
        #[source]
        source: url::ParseError,
    },
    /// A local directory that cannot be made.
    #[error("location {location}: cannot create directory {path}")]
    Directory {
        /// Location name.
        location: String,
        /// The directory.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `object_store` refused the URL or its options.
    #[error("location {location}: cannot open {url}")]
    Open {
        /// Location name.
        location: String,
        /// The URL (no credentials: those travel in options).
        url: String,
        /// The cause.
        #[source]
        source: object_store::Error,
    },
}

/// An `object_store` client for `location`, rooted at its URL's path (bucket prefix or directory).
pub fn open(location: &Location) -> Result<Arc<dyn ObjectStore>, Error> {
    let url = url::Url::parse(&location.url).map_err(|source| Error::Url {
        location: location.name.to_string(),
        url: location.url.clone(),
        source,
    })?;
    let open_err = |source| Error::Open {
        location: location.name.to_string(),
        url: location.url.clone(),
        source,
    };
    if url.scheme() == "file" {
        // A local directory: create it, so a fresh hub's default location works at once.
        let dir = std::path::PathBuf::from(url.path());
        std::fs::create_dir_all(&dir).map_err(|source| Error::Directory {
            location: location.name.to_string(),
            path: dir.display().to_string(),
            source,
        })?;
        let store = object_store::local::LocalFileSystem::new_with_prefix(&dir).map_err(open_err)?;
        return Ok(Arc::new(store));
    }
    let (store, prefix) = object_store::parse_url_opts(&url, location.options.iter()).map_err(open_err)?;
    if prefix.as_ref().is_empty() {
        Ok(Arc::from(store))
    } else {
        Ok(Arc::new(PrefixStore::new(store, prefix)))
    }
}
