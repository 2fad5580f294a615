//! The directory cache: accounts, aliases, domains and MTA config in RAM, a snapshot on flash.
pub mod password;
