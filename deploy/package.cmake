# deploy/package.cmake: what `make package` (CPack) puts in zcart's .deb.
#
#   /usr/bin/           zcart-broker, zcart-cart, zcart-stock, zcart-gateway, zcart, zcart-bench
#   /lib/systemd/system zcart-broker@.service, zcart-cart@.service, zcart-stock@.service,
#                       zcart-gateway@.service
#   /etc/zcart/         *.conf.example (copy one per instance; conffiles)
#   /usr/share/doc/zcart operations.md, security.md, protocol.md, gateway.md, openapi.yaml
#
# postinst makes the `zcart` system user the units run as.  scripts/check-package.sh
# builds it, installs it with dpkg, verifies the units and removes it again.
install(TARGETS zcart-broker zcart-cart zcart-stock zcart-gateway zcart-cli zcart-bench
        RUNTIME DESTINATION bin)
install(FILES ${CMAKE_SOURCE_DIR}/deploy/systemd/zcart-broker@.service
              ${CMAKE_SOURCE_DIR}/deploy/systemd/zcart-cart@.service
              ${CMAKE_SOURCE_DIR}/deploy/systemd/zcart-stock@.service
              ${CMAKE_SOURCE_DIR}/deploy/systemd/zcart-gateway@.service
        DESTINATION /lib/systemd/system)
install(FILES ${CMAKE_SOURCE_DIR}/deploy/systemd/broker.conf.example
              ${CMAKE_SOURCE_DIR}/deploy/systemd/cart.conf.example
              ${CMAKE_SOURCE_DIR}/deploy/systemd/stock.conf.example
              ${CMAKE_SOURCE_DIR}/deploy/systemd/gateway.conf.example
              ${CMAKE_SOURCE_DIR}/deploy/local/demo-catalog.csv
        DESTINATION /etc/zcart)
install(FILES ${CMAKE_SOURCE_DIR}/docs/operations.md ${CMAKE_SOURCE_DIR}/docs/security.md
              ${CMAKE_SOURCE_DIR}/docs/protocol.md ${CMAKE_SOURCE_DIR}/README.md
              ${CMAKE_SOURCE_DIR}/docs/gateway.md ${CMAKE_SOURCE_DIR}/docs/openapi.yaml
        DESTINATION share/doc/zcart)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME zcart)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_PACKAGE_CONTACT "zcart maintainers <zcart@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Raft-replicated shopping-cart broker on ZeroMQ")
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "passwd")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
# The example configs are conffiles: an upgrade keeps the operator's edits.
file(WRITE ${CMAKE_BINARY_DIR}/deb/conffiles
     "/etc/zcart/broker.conf.example\n/etc/zcart/cart.conf.example\n"
     "/etc/zcart/stock.conf.example\n/etc/zcart/gateway.conf.example\n"
     "/etc/zcart/demo-catalog.csv\n")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_BINARY_DIR}/deb/conffiles ${CMAKE_SOURCE_DIR}/deploy/systemd/postinst
    ${CMAKE_SOURCE_DIR}/deploy/systemd/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
