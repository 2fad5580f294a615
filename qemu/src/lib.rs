//! Boots Postern images under QEMU; a console driver for tests.
