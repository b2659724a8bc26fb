"""The architectures of part II (chapters 4–11), weight-compatible with torchvision's where it has them.

Every classifier has the same two halves, ``features(x)`` (the last feature map, before global
pooling; the Vision Transformer returns its tokens) and ``head(z)`` (pooling and classifier), with
``forward(x) == head(features(x))``.
Each module says which chapter introduces it.
"""

from companion.models.attention import SelfAttention2d
from companion.models.densenet import DenseBlock, DenseLayer, DenseNet, Transition, densenet121, feature_reuse
from companion.models.preact import PreActBlock, PreActResNet, preact_resnet18
from companion.models.resnet import (BasicBlock, Bottleneck, ResNet, resnet18, resnet34, resnet50, resnext50_32x4d,
                                     wide_resnet50_2)
from companion.models.se import SEBasicBlock, SEBlock, SEBottleneck, se_resnet50
from companion.models.vit import (MultiHeadSelfAttention, TransformerBlock, VisionTransformer, load_torch_attention,
                                 load_torchvision_vit)
from companion.models.wrn import WideBlock, blocks_per_group, wide_resnet
from companion.models.alexnet import ALEXNET, ALEXNET_2012, AlexNet, alexnet
from companion.models.googlenet import (AuxClassifier, BasicConv2d, GoogLeNet, GoogLeNetOutputs, InceptionBlock,
                                        NaiveInceptionBlock, googlenet)
from companion.models.inception import (AuxClassifierV3, Inception8, Inception17, Inception35, InceptionOutputs,
                                        InceptionResNetA, InceptionV3, Reduction17to8, Reduction35to17, inception_v3)
from companion.models.mobilenet import (ConvBNReLU, DepthwiseSeparableConv, InvertedResidual, MobileNetV1,
                                        MobileNetV2, mobilenet_v1, mobilenet_v2)
from companion.models.unet import DoubleConv, UNet
from companion.models.efficientnet import EFFICIENTNET_B0, EfficientNet, MBConv, efficientnet_b0
from companion.models.gan import DCGANDiscriminator, DCGANGenerator, dcgan_init
from companion.models.squeezenet import Fire, SqueezeNet, squeezenet1_0, squeezenet1_1
from companion.models.vgg import VGG, VGG11, VGG16, convolutional_head, vgg11, vgg16
