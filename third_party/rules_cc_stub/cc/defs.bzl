"""Offline stand-in for @rules_cc//cc:defs.bzl: forwards to the native rules."""

def cc_binary(**kwargs):
    # buildifier: disable=native-cc-binary (this stub forwards to the native rule on purpose (offline stand-in for rules_cc))
    native.cc_binary(**kwargs)

def cc_test(**kwargs):
    # buildifier: disable=native-cc-test (this stub forwards to the native rule on purpose (offline stand-in for rules_cc))
    native.cc_test(**kwargs)

def cc_library(**kwargs):
    # buildifier: disable=native-cc-library (this stub forwards to the native rule on purpose (offline stand-in for rules_cc))
    native.cc_library(**kwargs)

def cc_import(**kwargs):
    # buildifier: disable=native-cc-import (this stub forwards to the native rule on purpose (offline stand-in for rules_cc))
    native.cc_import(**kwargs)

def cc_proto_library(**kwargs):
    # buildifier: disable=native-cc-proto (this stub forwards to the native rule on purpose (offline stand-in for rules_cc))
    native.cc_proto_library(**kwargs)

def cc_toolchain(**kwargs):
    # buildifier: disable=native-cc-toolchain (this stub forwards to the native rule on purpose (offline stand-in for rules_cc))
    native.cc_toolchain(**kwargs)

def cc_toolchain_suite(**kwargs):
    # buildifier: disable=native-cc-toolchain-suite (this stub forwards to the native rule on purpose (offline stand-in for rules_cc))
    native.cc_toolchain_suite(**kwargs)

def objc_library(**kwargs):
    # buildifier: disable=native-cc-objc-library (this stub forwards to the native rule on purpose (offline stand-in for rules_cc))
    native.objc_library(**kwargs)

def fdo_profile(**kwargs):
    # buildifier: disable=native-cc-fdo-profile (this stub forwards to the native rule on purpose (offline stand-in for rules_cc))
    native.fdo_profile(**kwargs)

def fdo_prefetch_hints(**kwargs):
    # buildifier: disable=native-cc-fdo-prefetch-hints (this stub forwards to the native rule on purpose (offline stand-in for rules_cc))
    native.fdo_prefetch_hints(**kwargs)
