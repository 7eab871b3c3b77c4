//! Files against real nodes sharing one files directory (a shared volume):
//! an upload through one node is served by another, to readers of its room
//! only, with ranges and the headers that keep a browser from running it;
//! images get their size and a thumbnail, photos lose their metadata, a
//! decompression bomb is refused; every refusal has its code and leaves
//! nothing stored; files no message carries are swept.

mod helpers;
mod limits;
mod serving;
