################################################################################
#
# nearcast-verity
#
################################################################################

# Built from the repository this tree lives in (the workspace root).
NEARCAST_VERITY_VERSION = 0.1.0
NEARCAST_VERITY_SITE = $(BR2_EXTERNAL_NEARCAST_PATH)/..
NEARCAST_VERITY_SITE_METHOD = local
# The crate's folder in the workspace (cargo install --path runs there).
NEARCAST_VERITY_SUBDIR = verity
# Build output and caches of the developer's tree stay out of the copy.
NEARCAST_VERITY_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = --exclude target --exclude fuzz/target --exclude benches
NEARCAST_VERITY_LICENSE = Apache-2.0

# Static, like image/'s binaries: the slot needs no shared Rust deps.
NEARCAST_VERITY_CARGO_ENV = RUSTFLAGS="-C target-feature=+crt-static"
NEARCAST_VERITY_CARGO_BUILD_OPTS = --locked --bin nearcast-verity
NEARCAST_VERITY_CARGO_INSTALL_OPTS = --locked --bin nearcast-verity

# A local site is not downloaded, so Buildroot's download step does not
# vendor its crates: vendor them after the rsync, offline builds follow.
define NEARCAST_VERITY_CARGO_VENDOR
	cd $(@D) && mkdir -p .cargo && \
		$(HOST_MAKE_ENV) $(PKG_CARGO_ENV) cargo vendor --locked VENDOR > .cargo/config.toml
endef
NEARCAST_VERITY_POST_RSYNC_HOOKS += NEARCAST_VERITY_CARGO_VENDOR

$(eval $(cargo-package))
