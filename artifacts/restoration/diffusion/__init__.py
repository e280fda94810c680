"""Diffusion-based restoration and editing (task ``diffusion``).

Importing this package is cheap: it imports neither torch nor diffusers; each module imports them
when it is used (install the ``[diffusion]`` extra). Everything works on tiny random-weight models
built from configs and loads real checkpoints only from a local directory
(``from_pretrained(local_dir, local_files_only=True)``); nothing is downloaded.

:mod:`artifacts.restoration.diffusion.restorer` / :mod:`~artifacts.restoration.diffusion.difix_layout`
    Reference-guided one-step restorer in the Difix3D+ style and its official checkpoint layout.
:mod:`artifacts.restoration.diffusion.editing`
    Latent editing: DesignEdit's key-masking self-attention (an attention processor, swapped in
    and restored by a context manager) with multi-layer latent decomposition and fusion for masked
    removal/inpainting; LatentEditor's delta-score edit mask (instruction vs. no-instruction noise
    predictions of an InstructPix2Pix-style UNet) with mask-restricted DDIM updates.
:mod:`artifacts.restoration.diffusion.caching`
    Step caching for multi-step samplers: DeepCache-style reuse of the deep UNet features every N
    steps, an ERTACache-style rectification, off for one-step models.
:mod:`artifacts.restoration.diffusion.ldsr`
    Latent-diffusion x4 super-resolution: the Stable Diffusion x4 upscaler layout loaded from a
    local directory (diffusers only, no ``transformers``), tiled, with a trainable
    frequency-compensation branch after the VAE decoder (idea of Luo et al., arXiv 2310.12004).
    This module imports torch when it is imported.

See ``docs/diffusion-editing.md``.
"""
