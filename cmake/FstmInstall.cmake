# `cmake --install` gives the headers, the library and a CMake package config, so a product can
# embed fstm with find_package(fstm) and link fstm::core.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)
install(TARGETS fstm_core EXPORT fstmTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
# The components, next to libfstm: fstm::video and fstm::faces for products that link them,
# fstm::cuda for libfstm to open at run time.
foreach(component fstm_video fstm_faces fstm_cuda)
  if(TARGET ${component})
    install(TARGETS ${component} EXPORT fstmTargets LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
  endif()
endforeach()
install(TARGETS fstm RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
foreach(dir tensor autograd kernels layers io fstm)
  install(DIRECTORY ${dir}/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/fstm/${dir}
    FILES_MATCHING PATTERN "*.h" PATTERN "cuda" EXCLUDE PATTERN "cli" EXCLUDE)
endforeach()
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/generated/fstm_build_config.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/fstm)
install(EXPORT fstmTargets NAMESPACE fstm:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/fstm)
configure_package_config_file(cmake/fstmConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/fstmConfig.cmake INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/fstm)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/fstmConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/fstmConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/fstmConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/fstm)
