//! Telethon and Pyrogram `.session` files on disk, read by the API's own reader
//! (`tgfleet_api::accounts::transfer::session_file`, which the import route's `session_file`
//! items use too); the result is sent to the API in tgfleet's own format, which carries every
//! field.

use std::path::Path;
use tgfleet_actors::import::formats::encode_tgfleet;
use tgfleet_api::accounts::transfer::session_file;

/// Reads one `.session` file into a tgfleet session string; every problem is one line.
pub async fn read(path: &Path) -> Result<String, String> {
    let session = session_file::read_path(path).await?;
    Ok(encode_tgfleet(&session))
}
