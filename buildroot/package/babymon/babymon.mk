################################################################################
#
# babymon
#
################################################################################

# The crate this external tree lives in. A local package is not vendored
# by Buildroot at download time: scripts/build-image runs `cargo vendor`
# into BABYMON_VENDOR_DIR first, and the build reads the crates there.
BABYMON_SITE = $(BR2_EXTERNAL_BABYMON_PATH)/..
BABYMON_SITE_METHOD = local
BABYMON_LICENSE = MIT or Apache-2.0
BABYMON_VENDOR_DIR = $(BR2_EXTERNAL_BABYMON_PATH)/package/babymon/vendor

# Build outputs, this tree and the browser tests' node modules are not
# sources of the crate.
BABYMON_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = \
	--exclude /target --exclude /build --exclude /artifacts \
	--exclude /buildroot --exclude node_modules --exclude '*.img*'

# host-clang: v4l2r generates its V4L2 bindings with bindgen, which
# loads libclang. busybox: installed first, so that /sbin/init is ours.
BABYMON_DEPENDENCIES = \
	host-clang \
	host-pkgconf \
	gstreamer1 \
	gst1-plugins-base \
	gst1-plugins-bad \
	$(if $(BR2_PACKAGE_BUSYBOX),busybox)

BABYMON_CARGO_ENV = \
	LIBCLANG_PATH=$(HOST_DIR)/lib \
	V4L2R_VIDEODEV2_H_PATH=$(STAGING_DIR)/usr/include/linux \
	BINDGEN_EXTRA_CLANG_ARGS="--sysroot=$(STAGING_DIR)" \
	PKG_CONFIG_ALLOW_CROSS=1

define BABYMON_USE_VENDORED_CRATES
	@if [ ! -d $(BABYMON_VENDOR_DIR) ]; then \
		echo "babymon: no vendored crates in $(BABYMON_VENDOR_DIR);" \
			"run scripts/build-image, or cargo vendor there" >&2; \
		exit 1; \
	fi
	mkdir -p $(@D)/.cargo
	printf '%s\n' \
		'[source.crates-io]' \
		'replace-with = "vendored-sources"' \
		'[source.vendored-sources]' \
		'directory = "$(BABYMON_VENDOR_DIR)"' \
		> $(@D)/.cargo/config.toml
endef
BABYMON_POST_RSYNC_HOOKS += BABYMON_USE_VENDORED_CRATES

BABYMON_PROFILE = $(if $(BR2_ENABLE_DEBUG),debug,release)
BABYMON_BIN_DIR = $(@D)/target/$(RUSTC_TARGET_NAME)/$(BABYMON_PROFILE)

define BABYMON_INSTALL_TARGET_CMDS
	$(INSTALL) -D -m 0755 $(BABYMON_BIN_DIR)/babymon \
		$(TARGET_DIR)/usr/bin/babymon
	rm -f $(TARGET_DIR)/sbin/init
	$(INSTALL) -D -m 0755 $(BABYMON_BIN_DIR)/babymon-init \
		$(TARGET_DIR)/sbin/init
endef

$(eval $(cargo-package))
