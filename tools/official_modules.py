"""Imports the official GSASR architectures (EDSRNOUP, Fea2GS) from a checkout of github
ChrisDud0257/GSASR (its TrainTestGSASR folder) without running basicsr's package __init__
files, which import every optional dependency. Shared by the tools that run the official code.
"""
import importlib.util
import os
import sys
import types


def load_module(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def official_archs(official):
    """(edsr_arch, fea2gs_arch) modules of the official code at `official` (TrainTestGSASR)."""
    import torch

    root = os.path.join(official, "basicsr")
    for pkg in ["basicsr", "basicsr.archs", "basicsr.utils", "basicsr.ops"]:
        m = types.ModuleType(pkg)
        m.__path__ = [os.path.join(official, *pkg.split("."))]
        sys.modules[pkg] = m
    # Stubs for imports that these two architectures never use (deformable convs, torchvision, logging).
    import logging
    sys.modules["basicsr.utils"].get_root_logger = logging.getLogger
    dcn = types.ModuleType("basicsr.ops.dcn")
    dcn.ModulatedDeformConvPack = type("ModulatedDeformConvPack", (torch.nn.Module,), {})
    dcn.modulated_deform_conv = None
    sys.modules["basicsr.ops.dcn"] = dcn
    if importlib.util.find_spec("torchvision") is None:
        sys.modules["torchvision"] = types.ModuleType("torchvision")
    load_module(os.path.join(root, "utils", "registry.py"), "basicsr.utils.registry")
    load_module(os.path.join(root, "archs", "arch_util.py"), "basicsr.archs.arch_util")
    edsr = load_module(os.path.join(root, "archs", "edsr_arch.py"), "basicsr.archs.edsr_arch")
    fea2gs = load_module(os.path.join(root, "archs", "fea2gs_arch.py"), "basicsr.archs.fea2gs_arch")
    return edsr, fea2gs


def official_zoo_classes(repo):
    """The official inference classes (RDNNOUP, SwinIRNOUP, HATNOUP_ROPE_AMP, EDSRNOUP, Fea2GS,
    Fea2GS_ROPE_AMP) from the `utils/` folder of a checkout of github ChrisDud0257/GSASR (the code
    `inference_paper.py` and `inference_enhenced.py` run), unchanged. torchvision, which some of
    those files import and never use, is stubbed when absent."""
    if importlib.util.find_spec("torchvision") is None:
        sys.modules["torchvision"] = types.ModuleType("torchvision")
    u = os.path.join(repo, "utils")
    mods = {n: load_module(os.path.join(u, n + ".py"), "gsasr_official_" + n)
            for n in ["edsrbaseline", "rdn", "swinir", "hatropeamp", "fea2gs", "fea2gsropeamp"]}
    return {
        "EDSRNOUP": mods["edsrbaseline"].EDSRNOUP, "RDNNOUP": mods["rdn"].RDNNOUP,
        "SwinIRNOUP": mods["swinir"].SwinIRNOUP, "HATNOUP_ROPE_AMP": mods["hatropeamp"].HATNOUP_ROPE_AMP,
        "Fea2GS": mods["fea2gs"].Fea2GS, "Fea2GS_ROPE_AMP": mods["fea2gsropeamp"].Fea2GS_ROPE_AMP,
    }
