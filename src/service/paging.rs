//! Paging of administrative listings: a page size and an opaque page token, which is the
//! base64url of the last key the previous page showed.
//!
//! Lists in key order ([`PageRequest::take`]) resume after that key, so a walk over all pages
//! shows every item present throughout it exactly once even while others come and go. Lists
//! in another order (sessions newest first) resume after the item with that key
//! ([`PageRequest::take_after_item`]); a token naming an item that has gone is refused.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::users::AdminError;

/// Items per page when none is asked for.
pub const DEFAULT_PAGE_SIZE: usize = 100;
/// The most items one page holds.
pub const MAX_PAGE_SIZE: usize = 1000;

/// Which page to return.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    size: usize,
    token: String,
}

/// One page and the token of the next one (`None` on the last page).
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_page_token: Option<String>,
}

impl PageRequest {
    /// `size` 0 means [`DEFAULT_PAGE_SIZE`]; larger than [`MAX_PAGE_SIZE`] is cut to it.
    /// `token` is empty for the first page.
    pub fn new(size: usize, token: impl Into<String>) -> Self {
        let size = match size {
            0 => DEFAULT_PAGE_SIZE,
            n => n.min(MAX_PAGE_SIZE),
        };
        Self {
            size,
            token: token.into(),
        }
    }

    /// The key the previous page ended with, if this is not the first page.
    ///
    /// # Errors
    /// [`AdminError::InvalidPageToken`] when the token is not one this module made.
    pub fn after(&self) -> Result<Option<String>, AdminError> {
        if self.token.is_empty() {
            return Ok(None);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(&self.token)
            .map_err(|_| AdminError::InvalidPageToken)?;
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| AdminError::InvalidPageToken)
    }

    /// How many rows to ask the store for: one more than a page, so [`Self::take`] knows
    /// whether another page follows.
    pub fn fetch_limit(&self) -> u32 {
        u32::try_from(self.size.saturating_add(1)).unwrap_or(u32::MAX)
    }

    /// The page of `items` (already after the previous page's key, in key order).
    pub fn take<T>(&self, items: impl Iterator<Item = T>, key: impl Fn(&T) -> String) -> Page<T> {
        let mut items: Vec<T> = items.take(self.size.saturating_add(1)).collect();
        let more = items.len() > self.size;
        items.truncate(self.size);
        let next_page_token = if more {
            items.last().map(|last| URL_SAFE_NO_PAD.encode(key(last)))
        } else {
            None
        };
        Page {
            items,
            next_page_token,
        }
    }

    /// The page of `items` that follows the item whose key the token names.
    ///
    /// # Errors
    /// [`AdminError::InvalidPageToken`] for a bad token or one naming an item not listed.
    pub fn take_after_item<T>(
        &self,
        items: Vec<T>,
        key: impl Fn(&T) -> String,
    ) -> Result<Page<T>, AdminError> {
        let start = match self.after()? {
            None => 0,
            Some(after) => {
                items
                    .iter()
                    .position(|i| key(i) == after)
                    .ok_or(AdminError::InvalidPageToken)?
                    + 1
            }
        };
        Ok(self.take(items.into_iter().skip(start), key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_cover_every_item_once_and_the_last_has_no_token() {
        let all: Vec<String> = (0..25).map(|i| format!("u{i:03}")).collect();
        let mut seen = Vec::new();
        let mut token = String::new();
        loop {
            let request = PageRequest::new(10, token.clone());
            let after = request.after().unwrap();
            let rest = all
                .iter()
                .filter(|u| after.as_deref().is_none_or(|a| u.as_str() > a))
                .cloned();
            let page = request.take(rest, Clone::clone);
            seen.extend(page.items);
            match page.next_page_token {
                Some(t) => token = t,
                None => break,
            }
        }
        assert_eq!(seen, all);
    }

    #[test]
    fn positional_pages_resume_after_the_named_item() {
        let items = vec!["c", "a", "b"];
        let first = PageRequest::new(2, "")
            .take_after_item(items.clone(), |s| (*s).to_owned())
            .unwrap();
        assert_eq!(first.items, ["c", "a"]);
        let second = PageRequest::new(2, first.next_page_token.unwrap())
            .take_after_item(items.clone(), |s| (*s).to_owned())
            .unwrap();
        assert_eq!(second.items, ["b"]);
        assert!(second.next_page_token.is_none());
        assert!(matches!(
            PageRequest::new(2, "!!").take_after_item(items, |s| (*s).to_owned()),
            Err(AdminError::InvalidPageToken)
        ));
    }

    #[test]
    fn page_size_zero_is_the_default_and_large_sizes_are_capped() {
        assert_eq!(PageRequest::new(0, "").size, DEFAULT_PAGE_SIZE);
        assert_eq!(PageRequest::new(1_000_000, "").size, MAX_PAGE_SIZE);
    }
}
