//! The `storage` interface: converts WIT values and calls the plugin's
//! [`PluginStorage`]. Nothing else happens here.

use super::{BatchError, Document, Order, PluginStorage, Query, QueryResult, StorageError, Write};
use crate::runtime::bindings::tessera::kernel::storage as wit;
use crate::runtime::state::InstanceState;

impl InstanceState {
    fn storage(&self) -> Result<&PluginStorage, wit::StorageError> {
        // Only linked when granted, so this is always present; still no panic.
        self.plugin
            .storage
            .as_ref()
            .ok_or_else(|| wit::StorageError::Backend("storage is not granted".into()))
    }
}

impl wit::Host for InstanceState {
    fn get(
        &mut self,
        collection: String,
        key: String,
    ) -> Result<Option<wit::Document>, wit::StorageError> {
        Ok(self.storage()?.get(&collection, &key)?.map(Into::into))
    }

    fn insert(
        &mut self,
        collection: String,
        key: String,
        value: String,
    ) -> Result<wit::Document, wit::StorageError> {
        Ok(self.storage()?.insert(&collection, &key, &value)?.into())
    }

    fn put(
        &mut self,
        collection: String,
        key: String,
        value: String,
        expected_version: Option<u64>,
    ) -> Result<wit::Document, wit::StorageError> {
        Ok(self
            .storage()?
            .put(&collection, &key, &value, expected_version)?
            .into())
    }

    fn delete(
        &mut self,
        collection: String,
        key: String,
        expected_version: Option<u64>,
    ) -> Result<bool, wit::StorageError> {
        Ok(self
            .storage()?
            .delete(&collection, &key, expected_version)?)
    }

    fn query(&mut self, q: wit::QueryRequest) -> Result<wit::QueryResult, wit::StorageError> {
        let query = Query {
            collection: q.collection,
            filter: q.filter,
            order_by: q
                .order_by
                .into_iter()
                .map(|o| Order {
                    path: o.path,
                    descending: o.descending,
                })
                .collect(),
            offset: q.offset,
            limit: q.limit,
        };
        let QueryResult { documents, total } = self.storage()?.query(&query)?;
        Ok(wit::QueryResult {
            documents: documents.into_iter().map(Into::into).collect(),
            total,
        })
    }

    fn batch(
        &mut self,
        writes: Vec<wit::Write>,
    ) -> Result<Vec<Option<wit::Document>>, wit::BatchError> {
        let storage = self
            .storage()
            .map_err(|error| wit::BatchError { index: 0, error })?;
        let writes: Vec<Write> = writes.into_iter().map(Into::into).collect();
        match storage.batch(&writes) {
            Ok(docs) => Ok(docs.into_iter().map(|d| d.map(Into::into)).collect()),
            Err(BatchError { index, error }) => Err(wit::BatchError {
                index,
                error: error.into(),
            }),
        }
    }

    fn next_id(&mut self, sequence: String) -> Result<u64, wit::StorageError> {
        Ok(self.storage()?.next_id(&sequence)?)
    }

    fn ensure_index(
        &mut self,
        collection: String,
        name: String,
        paths: Vec<String>,
        unique: bool,
    ) -> Result<(), wit::StorageError> {
        Ok(self
            .storage()?
            .ensure_index(&collection, &name, &paths, unique)?)
    }
}

impl From<Document> for wit::Document {
    fn from(d: Document) -> Self {
        wit::Document {
            key: d.key,
            version: d.version,
            value: d.value,
            created: d.created,
            updated: d.updated,
        }
    }
}

impl From<wit::Write> for Write {
    fn from(w: wit::Write) -> Self {
        match w {
            wit::Write::Insert(op) => Write::Insert {
                collection: op.collection,
                key: op.key,
                value: op.value,
            },
            wit::Write::Put(op) => Write::Put {
                collection: op.collection,
                key: op.key,
                value: op.value,
                expected_version: op.expected_version,
            },
            wit::Write::Delete(op) => Write::Delete {
                collection: op.collection,
                key: op.key,
                expected_version: op.expected_version,
            },
        }
    }
}

impl From<StorageError> for wit::StorageError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotFound => wit::StorageError::NotFound,
            StorageError::AlreadyExists => wit::StorageError::AlreadyExists,
            StorageError::Conflict(v) => wit::StorageError::Conflict(v),
            StorageError::Invalid(m) => wit::StorageError::Invalid(m),
            StorageError::UniqueViolation(n) => wit::StorageError::UniqueViolation(n),
            StorageError::Backend(m) => {
                tracing::error!(error = %m, "storage backend failure");
                wit::StorageError::Backend("the database failed; see the kernel log".into())
            }
        }
    }
}
