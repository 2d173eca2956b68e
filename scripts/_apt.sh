# Sourced by the install scripts: installs a Debian package when it is missing.
#
#   apt_install_missing WHO PACKAGE    # WHO names the caller in messages
apt_install_missing() {
    local who="$1" package="$2"
    if dpkg -s "$package" >/dev/null 2>&1; then
        return 0
    fi
    echo "$who: installing Debian package $package" >&2
    if [ "$(id -u)" -ne 0 ]; then
        echo "$who: $package is missing and this is not root;" \
            "run: sudo apt-get update && sudo apt-get install -y $package" >&2
        exit 1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >/dev/null
}
