# What `cmake --install` puts on a host: the same files as the Debian package
# (packaging/build-deb.sh), so the unit's Documentation= and ExecStart= name files that exist.
#
#   sbin/flowlatd                         (daemon/CMakeLists.txt)
#   <unit dir>/flowlatd.service           ExecStart= rewritten to this prefix's sbin
#   <unit dir>/flowlatd.socket            optional socket activation; never enabled
#   /etc/flowlatd/flowlatd.yaml           the daemon reads only this path, whatever the prefix;
#                                         an existing file is kept (it is the admin's)
#   share/man/man8/flowlatd.8
#   share/doc/flowlatd/                   README.md, docs/*.md, flowlatd.yaml.example

# systemd reads units from /lib/systemd/system (Debian 12 ships them there) and from
# /usr/local/lib/systemd/system; an installation under /usr uses the first.
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(_flowlat_unit_dir_default /lib/systemd/system)
else()
  set(_flowlat_unit_dir_default ${CMAKE_INSTALL_PREFIX}/lib/systemd/system)
endif()
set(FLOWLAT_SYSTEMD_UNIT_DIR ${_flowlat_unit_dir_default} CACHE PATH "Where `cmake --install` puts flowlatd.service")
set(FLOWLAT_CONFIG_DIR /etc/flowlatd CACHE PATH "Where `cmake --install` puts flowlatd.yaml (flowlatd reads /etc/flowlatd/flowlatd.yaml)")

# The unit in systemd/ names /usr/sbin/flowlatd and /usr/share/doc/flowlatd (the package's
# paths); an installation elsewhere gets a copy that names its own.
file(READ ${CMAKE_SOURCE_DIR}/systemd/flowlatd.service _flowlat_unit)
string(REPLACE "/usr/sbin/flowlatd" "${CMAKE_INSTALL_FULL_SBINDIR}/flowlatd" _flowlat_unit "${_flowlat_unit}")
string(REPLACE "/usr/share/doc/flowlatd" "${CMAKE_INSTALL_FULL_DOCDIR}" _flowlat_unit "${_flowlat_unit}")
file(GENERATE OUTPUT ${CMAKE_BINARY_DIR}/install/flowlatd.service CONTENT "${_flowlat_unit}")
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/systemd/flowlatd.service)

# The optional socket unit (socket activation, --web.systemd-socket): installed, never enabled.
file(READ ${CMAKE_SOURCE_DIR}/systemd/flowlatd.socket _flowlat_socket_unit)
string(REPLACE "/usr/share/doc/flowlatd" "${CMAKE_INSTALL_FULL_DOCDIR}" _flowlat_socket_unit "${_flowlat_socket_unit}")
file(GENERATE OUTPUT ${CMAKE_BINARY_DIR}/install/flowlatd.socket CONTENT "${_flowlat_socket_unit}")
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/systemd/flowlatd.socket)

install(FILES ${CMAKE_BINARY_DIR}/install/flowlatd.service ${CMAKE_BINARY_DIR}/install/flowlatd.socket
        DESTINATION ${FLOWLAT_SYSTEMD_UNIT_DIR})
install(FILES ${CMAKE_SOURCE_DIR}/docs/flowlatd.8 DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
install(FILES ${CMAKE_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
file(GLOB _flowlat_docs CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/docs/*.md)
install(FILES ${_flowlat_docs} DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES ${CMAKE_SOURCE_DIR}/config/flowlatd.yaml DESTINATION ${CMAKE_INSTALL_DOCDIR}
        RENAME flowlatd.yaml.example)

# The configuration: installed when absent, never overwritten (an upgrade by `cmake --install`
# must not undo the admin's edits; the Debian package makes it a conffile instead).
install(CODE "
  set(_target \"\$ENV{DESTDIR}${FLOWLAT_CONFIG_DIR}/flowlatd.yaml\")
  if(EXISTS \"\${_target}\")
    message(STATUS \"Keeping: \${_target} (the shipped one is in ${CMAKE_INSTALL_FULL_DOCDIR}/flowlatd.yaml.example)\")
  else()
    file(INSTALL DESTINATION \"${FLOWLAT_CONFIG_DIR}\" TYPE FILE
         FILES \"${CMAKE_SOURCE_DIR}/config/flowlatd.yaml\")
  endif()
")
