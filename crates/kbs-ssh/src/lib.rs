//! SSH transport: russh connections, authentication, host keys, bastions, sudo, exec and upload.
